"""How probe `critic`'s expression critics read real faces of the sets they did not learn: every JAFFE and Yale face,
per expression label (the sets' own), the share each critic and human-models' mini-Xception call neutral
(tools/train_neutral_critic.py's transfer table). Markdown on stdout.

    python docs/results/critic/transfer.py LABEL=runs/critic.safetensors ...
"""
import importlib.util
import sys
from pathlib import Path

from nfgan.models.auxiliary.neutral_critic import NeutralCritic

REPO = Path(__file__).resolve().parents[3]


def main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("train_neutral_critic", REPO / "tools/train_neutral_critic.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for arg in argv:
        label, path = arg.split("=", 1)
        critic = NeutralCritic.load(REPO / path)
        for name in ("jaffe", "yale"):
            print(f"\n### {label} (`{path}`), {name}\n")
            print("\n".join(tool.transfer_table(critic, REPO / f"out/{name}64")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
