"""The Surrey Face Model (SFM), as eos-py loads it: shape model, six expression blendshapes, landmark mapping.

Read from a folder (``--sfm``, else ``$NFGAN_SFM``, else ``../shared/models/sfm``) and never copied: the SFM is
free for non-commercial use only. Used by ``nfgan synth-expressions`` (:mod:`nfgan.data.synth_expressions`,
synthetic expressive and turned faces) and the classic 3D frontalisation baseline
(:mod:`nfgan.data.frontalize3d`). Needs ``eos-py`` (``pip install 'nfgan[synth]'``).
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the SFM files read (in the ``--sfm`` folder)
SFM_FILES = {"shape": "sfm_shape_3448.bin", "blendshapes": "expression_blendshapes_3448.bin",
             "mapping": "ibug_to_sfm.txt", "edges": "sfm_3448_edge_topology.json",
             "contours": "sfm_model_contours.json"}
DEFAULT_SFM = "../shared/models/sfm"
SFM_ENV = "NFGAN_SFM"
#: the six blendshapes of expression_blendshapes_3448.bin, by index (checked against the file's names)
BLENDSHAPES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")


class SynthError(ValueError):
    """An unusable SFM folder, SRC, OUT or option (the message names the file or the option)."""


def require_eos():
    try:
        import eos
    except ImportError:
        raise SynthError("the Surrey Face Model (nfgan synth-expressions, the frontalize3d baseline) needs eos-py, "
                         "its fitting library: pip install 'nfgan[synth]'") from None
    return eos


def eos_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eos-py")
    except PackageNotFoundError:
        return "unknown"


def sfm_folder(path: str | os.PathLike | None) -> Path:
    """The ``--sfm`` folder (``$NFGAN_SFM``, else ``../shared/models/sfm``, when ``None``), every file checked."""
    folder = Path(path if path is not None else os.environ.get(SFM_ENV) or DEFAULT_SFM)
    if not folder.is_dir():
        raise SynthError(f"{folder}: no Surrey Face Model folder here (--sfm PATH, or ${SFM_ENV}; it must hold "
                         f"{', '.join(SFM_FILES.values())})")
    for name in SFM_FILES.values():
        if not (folder / name).is_file():
            raise SynthError(f"{folder / name}: missing (the Surrey Face Model file nfgan synth-expressions reads)")
    return folder


@dataclass
class SFM:
    """The Surrey Face Model with its blendshapes, as eos loads them, and the landmark -> vertex table."""

    folder: Path
    model: object              # eos MorphableModel with the blendshapes as its expression model
    blendshapes: list          # eos Blendshape, by index
    names: list[str]
    mapper: object
    edges: object
    contour_landmarks: object
    model_contour: object
    vertex_of: dict[int, int]  # iBUG index (0-based) -> SFM vertex, where ibug_to_sfm.txt defines one
    contour_vertices: np.ndarray
    deformations: np.ndarray   # blendshapes x vertices x 3

    @classmethod
    def load(cls, path: str | os.PathLike | None) -> "SFM":
        folder = sfm_folder(path)
        eos = require_eos()

        def load(what: str, fn):
            try:
                return fn(str(folder / SFM_FILES[what]))
            except (RuntimeError, ValueError, OSError) as e:
                raise SynthError(f"{folder / SFM_FILES[what]}: cannot be read by eos ({e})") from None

        mm = eos.morphablemodel
        shape = load("shape", mm.load_model)
        blendshapes = list(load("blendshapes", mm.load_blendshapes))
        names = [str(b.name) for b in blendshapes]
        if names != list(BLENDSHAPES):
            raise SynthError(f"{folder / SFM_FILES['blendshapes']}: blendshapes {names}, expected {list(BLENDSHAPES)}")
        model = mm.MorphableModel(shape.get_shape_model(), blendshapes, color_model=mm.PcaModel(),
                                  vertex_definitions=None, texture_coordinates=shape.get_texture_coordinates())
        mapper = load("mapping", eos.core.LandmarkMapper)
        edges = load("edges", mm.load_edge_topology)
        contour_lm = load("mapping", eos.fitting.ContourLandmarks.load)
        contour = load("contours", eos.fitting.ModelContour.load)
        try:
            spec = json.loads((folder / SFM_FILES["contours"]).read_text(encoding="utf-8"))["model_contour"]
            contour_vertices = np.asarray(spec["right_contour"] + spec["left_contour"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as e:
            raise SynthError(f"{folder / SFM_FILES['contours']}: no model_contour right/left lists ({e})") from None
        vertex_of = {}
        for i in range(68):
            v = mapper.convert(str(i + 1))
            if v is not None:
                vertex_of[i] = int(v)
        n_vertices = len(np.asarray(shape.get_shape_model().get_mean())) // 3
        deformations = np.stack([np.asarray(b.deformation, dtype=np.float64).reshape(-1, 3) for b in blendshapes])
        if deformations.shape[1] != n_vertices or not vertex_of:
            raise SynthError(f"{folder}: the blendshapes ({deformations.shape[1]} vertices) or the landmark mapping "
                             f"({len(vertex_of)} points) do not fit the shape model ({n_vertices} vertices)")
        return cls(folder, model, blendshapes, names, mapper, edges, contour_lm, contour, vertex_of,
                   contour_vertices, deformations)

    @functools.cached_property
    def triangles(self) -> np.ndarray:
        """The shape model's triangles, ``T x 3`` vertex indices."""
        return np.asarray(self.model.get_shape_model().get_triangle_list(), dtype=np.int64)

    def fit(self, landmarks: np.ndarray, size: int):
        """Fit shape and pose to 68 landmarks: (3x4 affine camera matrix, fitted vertices ``V x 3``)."""
        camera, vertices, _ = self.fit_full(landmarks, size)
        return camera, vertices

    def fit_full(self, landmarks: np.ndarray, size: int):
        """Like :meth:`fit`, and the fitted shape without its expression: ``(camera 3x4, vertices V x 3 with the
        fitted blendshapes, vertices V x 3 of the shape alone)``."""
        import eos

        lms = [eos.core.Landmark(str(i + 1), [float(x), float(y)]) for i, (x, y) in enumerate(landmarks)]
        mesh, pose, shape_coeffs, _ = eos.fitting.fit_shape_and_pose(
            self.model, lms, self.mapper, size, size, self.edges, self.contour_landmarks, self.model_contour)
        camera = np.asarray(eos.fitting.get_3x4_affine_camera_matrix(pose, size, size), dtype=np.float64)
        neutral = np.asarray(self.model.get_shape_model().draw_sample(shape_coeffs), dtype=np.float64)
        return camera, np.asarray(mesh.vertices, dtype=np.float64), neutral.reshape(-1, 3)
