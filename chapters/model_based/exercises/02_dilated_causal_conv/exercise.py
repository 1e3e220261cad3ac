"""Exercise 2: a dilated causal convolution and SNAIL's TC block (see README.md in this folder).

Check your answer from the repository root with

    python -m common.exercises check chapters/model_based/exercises/02_dilated_causal_conv
"""

import math

import numpy as np


def causal_conv1d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, dilation: int) -> np.ndarray:
    """``y_t = x_{t-R} @ kernel[0] + x_t @ kernel[1] + bias``, zeros before the first position.

    ``x`` (T, C_in), ``kernel`` (2, C_in, C_out), ``bias`` (C_out,) -> (T, C_out).
    """
    # ---- your code here: replace the line below (about 2 lines) ----
    raise NotImplementedError("causal_conv1d: pad R zeros before the sequence and combine x_{t-R} and x_t")


def dense_block(x, filter_kernel, filter_bias, gate_kernel, gate_bias, dilation: int) -> np.ndarray:
    """Algorithm 1: ``concat(x, tanh(conv_f(x)) * sigmoid(conv_g(x)))``, (T, C_in + D)."""
    # ---- your code here: replace the line below (about 3 lines) ----
    raise NotImplementedError("dense_block: gated activation of two causal convolutions, concatenated to x")


def tc_dilations(length: int) -> list:
    """Algorithm 2: the dilations 2, 4, ..., 2^ceil(log2 T) of a TC block over T positions."""
    # ---- your code here: replace the line below (about 1 line) ----
    raise NotImplementedError("tc_dilations: one dilation 2^i for each i = 1 .. ceil(log2 T)")


def tc_block(x: np.ndarray, dense_blocks: list) -> np.ndarray:
    """Algorithm 2: the dense blocks one after the other; each of ``dense_blocks`` is a tuple
    (filter_kernel, filter_bias, gate_kernel, gate_bias, dilation)."""
    # ---- your code here: replace the line below (about 3 lines) ----
    raise NotImplementedError("tc_block: apply dense_block for each block in turn")
