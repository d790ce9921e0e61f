"""Shared model layers: deformable convolution against a direct loop over output pixels and taps."""

import math

import pytest
import torch

from iqarena.errors import InputError
from iqarena.models.layers import DeformConv2d, deform_conv2d


def loop_deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask=None):
    """The definition, one output value at a time: bilinear samples (zero outside) at each tap + offset."""
    n, c, h, w = x.shape
    c_out, cg, kh, kw = weight.shape
    groups, taps = c // cg, kh * kw
    og = offset.shape[1] // (2 * taps)
    ho, wo = offset.shape[-2:]

    def sample(b, ch, y, xx):
        y0, x0 = math.floor(y), math.floor(xx)
        total = 0.0
        for yy, xq, wt in ((y0, x0, (1 - (y - y0)) * (1 - (xx - x0))), (y0, x0 + 1, (1 - (y - y0)) * (xx - x0)),
                           (y0 + 1, x0, (y - y0) * (1 - (xx - x0))), (y0 + 1, x0 + 1, (y - y0) * (xx - x0))):
            if 0 <= yy < h and 0 <= xq < w:
                total += wt * float(x[b, ch, yy, xq])
        return total

    out = torch.zeros(n, c_out, ho, wo, dtype=torch.float64)
    for b in range(n):
        for o in range(c_out):
            g = o // (c_out // groups)
            for i in range(ho):
                for j in range(wo):
                    acc = float(bias[o]) if bias is not None else 0.0
                    for ci in range(cg):
                        ch = g * cg + ci
                        grp = ch // (c // og)
                        for ki in range(kh):
                            for kj in range(kw):
                                k = ki * kw + kj
                                dy = float(offset[b, grp * 2 * taps + 2 * k, i, j])
                                dx = float(offset[b, grp * 2 * taps + 2 * k + 1, i, j])
                                y = i * stride - padding + ki * dilation + dy
                                xx = j * stride - padding + kj * dilation + dx
                                v = sample(b, ch, y, xx)
                                if mask is not None:
                                    v *= float(mask[b, grp * taps + k, i, j])
                                acc += float(weight[o, ci, ki, kj]) * v
                    out[b, o, i, j] = acc
    return out


@pytest.mark.parametrize("stride,padding,dilation,groups,offset_groups,masked",
                         [(1, 1, 1, 1, 1, False), (2, 1, 1, 2, 2, True), (1, 2, 2, 1, 2, True), (1, 0, 1, 4, 1, False)])
def test_deform_conv2d_matches_the_loop(stride, padding, dilation, groups, offset_groups, masked):
    g = torch.Generator().manual_seed(stride * 7 + padding + groups)
    n, c, h, w, c_out, k = 2, 4, 7, 6, 4, 3
    x = torch.rand(n, c, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c_out, c // groups, k, k, generator=g, dtype=torch.float64)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    ho = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    # offsets up to 3 pixels: taps land between pixels, on them, and outside the image
    offset = (torch.rand(n, 2 * offset_groups * k * k, ho, wo, generator=g, dtype=torch.float64) - 0.5) * 6
    offset[0, 0, 0, 0] = 1.0  # an integer offset: exactly on a pixel
    mask = torch.rand(n, offset_groups * k * k, ho, wo, generator=g, dtype=torch.float64) if masked else None
    got = deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)
    want = loop_deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_zero_offsets_are_an_ordinary_convolution():
    g = torch.Generator().manual_seed(1)
    layer = DeformConv2d(3, 5, 3, stride=2, padding=1, groups=1).double()
    x = torch.rand(2, 3, 9, 8, generator=g, dtype=torch.float64)
    offset = torch.zeros(2, 18, 5, 4, dtype=torch.float64)
    want = torch.nn.functional.conv2d(x, layer.weight, layer.bias, stride=2, padding=1)
    torch.testing.assert_close(layer(x, offset), want, rtol=1e-12, atol=1e-12)


def test_gradients_reach_the_input_the_offsets_and_the_weights():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    offset = ((torch.rand(1, 18, 5, 5, generator=g, dtype=torch.float64) - 0.5) * 1.5).requires_grad_()
    weight = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, o, w: deform_conv2d(a, o, w, None, 1, 1, 1), (x, offset, weight))


def test_bad_shapes_are_named():
    x = torch.rand(1, 4, 6, 6)
    with pytest.raises(InputError, match="offset"):
        deform_conv2d(x, torch.zeros(1, 17, 6, 6), torch.rand(2, 4, 3, 3), padding=1)
    with pytest.raises(InputError, match="does not match the output"):
        deform_conv2d(x, torch.zeros(1, 18, 5, 5), torch.rand(2, 4, 3, 3), padding=1)
