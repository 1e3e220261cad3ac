"""Exercise 2, a reference solution: SNAIL's causal convolution, dense block and TC block in NumPy."""

import math

import numpy as np


def causal_conv1d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, dilation: int) -> np.ndarray:
    """``y_t = x_{t-R} @ kernel[0] + x_t @ kernel[1] + bias``, zeros before the first position."""
    past = np.pad(x, ((dilation, 0), (0, 0)))[:len(x)]  # row t is x_{t-R}: zeros in front, never behind
    return past @ kernel[0] + x @ kernel[1] + bias


def dense_block(x, filter_kernel, filter_bias, gate_kernel, gate_bias, dilation: int) -> np.ndarray:
    """Algorithm 1: ``concat(x, tanh(conv_f(x)) * sigmoid(conv_g(x)))``."""
    f = causal_conv1d(x, filter_kernel, filter_bias, dilation)
    g = causal_conv1d(x, gate_kernel, gate_bias, dilation)
    return np.concatenate([x, np.tanh(f) / (1 + np.exp(-g))], axis=1)


def tc_dilations(length: int) -> list:
    """Algorithm 2: 2, 4, ..., 2^ceil(log2 T)."""
    return [2 ** i for i in range(1, math.ceil(math.log2(length)) + 1)]


def tc_block(x: np.ndarray, dense_blocks: list) -> np.ndarray:
    """Algorithm 2: the dense blocks one after the other."""
    for filter_kernel, filter_bias, gate_kernel, gate_bias, dilation in dense_blocks:
        x = dense_block(x, filter_kernel, filter_bias, gate_kernel, gate_bias, dilation)
    return x
