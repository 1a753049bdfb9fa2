"""The perch_tiny fixture rebuilt in TensorFlow and saved as a SavedModel (run in .venv-convert).

``.venv-convert/bin/python -m birdclef_eos.backbone.perch_tiny_tf WEIGHTS.npz OUT_DIR``

WEIGHTS.npz is what `perch_tiny.export_weights` writes from the torch fixture (BatchNorm already
folded into per-channel scale and shift; a ``config`` JSON string gives the block list). The
TensorFlow graph is channels-last like Perch v2's own SavedModel, with the same weights, so its
outputs match the torch fixture's to float32 rounding, and each block's ops sit under a
``MBConv_<i>`` name scope as in Perch. Signature ``serving_default``: input ``inputs`` [B, 160000];
outputs ``label``, ``embedding``, ``spatial_embedding``, ``spectrogram``.

Imports only the standard library, numpy and tensorflow: keep it that way.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def build_module(weights: dict[str, np.ndarray]):
    import tensorflow as tf

    config = json.loads(str(weights["config"]))

    def conv_filter(name):  # torch [out, in/groups, kh, kw] -> tf [kh, kw, in, out]
        return tf.constant(np.transpose(weights[name], (2, 3, 1, 0)))

    def depthwise_filter(name):  # torch [C, 1, kh, kw] -> tf [kh, kw, C, 1]
        return tf.constant(np.transpose(weights[name], (2, 3, 0, 1)))

    def vector(name):
        return tf.constant(weights[name].reshape(-1))

    def conv_affine(x, prefix, kernel=1, stride=1, depthwise=False, act=True):
        pad = kernel // 2
        if pad:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        if depthwise:
            x = tf.nn.depthwise_conv2d(x, depthwise_filter(prefix + ".conv.weight"), [1, stride, stride, 1], "VALID")
        else:
            x = tf.nn.conv2d(x, conv_filter(prefix + ".conv.weight"), stride, "VALID")
        x = x * vector(prefix + ".norm.scale") + vector(prefix + ".norm.shift")
        return tf.nn.silu(x) if act else x

    class PerchTinyTF(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, config["window_samples"]], tf.float32, name="inputs")])
        def serve(self, inputs):
            with tf.name_scope("frontend"):
                frames = tf.reshape(inputs, [-1, config["window_samples"] // config["frame"], config["frame"]])
                power = tf.square(frames @ weights["frontend.cos"]) + tf.square(frames @ weights["frontend.sin"])
                spectrogram = tf.math.log(power @ weights["frontend.mel"] + 1e-6)
            with tf.name_scope("Stem_0"):
                h = conv_affine(spectrogram[..., None], "Stem_0", 3, 2)
            for i, block in enumerate(config["blocks"]):
                p = f"MBConv_{i}"
                with tf.name_scope(p):
                    x = h
                    if block["expand"]:
                        h = conv_affine(h, p + ".ExpandConv")
                    h = conv_affine(h, p + ".DepthwiseConv", block["kernel"], block["stride"], depthwise=True)
                    gate = tf.reduce_mean(h, axis=[1, 2], keepdims=True)
                    gate = tf.nn.silu(tf.nn.conv2d(gate, conv_filter(p + ".SqueezeExcite.reduce.weight"), 1, "VALID")
                                      + vector(p + ".SqueezeExcite.reduce.bias"))
                    gate = tf.sigmoid(tf.nn.conv2d(gate, conv_filter(p + ".SqueezeExcite.expand.weight"), 1, "VALID")
                                      + vector(p + ".SqueezeExcite.expand.bias"))
                    h = conv_affine(h * gate, p + ".ProjectConv", act=False)
                    if block["residual"]:
                        h = h + x
            with tf.name_scope("Head_0"):
                spatial = conv_affine(h, "Head_0")
            embedding = tf.reduce_mean(spatial, axis=[1, 2])
            label = embedding @ tf.constant(weights["Classifier_0.weight"].T) + vector("Classifier_0.bias")
            return {"label": label, "embedding": embedding, "spatial_embedding": spatial,
                    "spectrogram": spectrogram}

    return PerchTinyTF()


def save_fixture(weights_npz: Path, out_dir: Path) -> None:
    import tensorflow as tf

    with np.load(weights_npz) as data:
        weights = {k: data[k] for k in data.files}
    module = build_module(weights)
    tf.saved_model.save(module, str(out_dir), signatures={"serving_default": module.serve})


if __name__ == "__main__":
    save_fixture(Path(sys.argv[1]), Path(sys.argv[2]))
