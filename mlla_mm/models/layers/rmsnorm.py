"""RMSNorm as Mamba/Vim use it: weight only (no bias), computed in float32."""
import torch
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dim: ``x * rsqrt(mean(x^2) + eps) * weight``.

    The statistics and the product are computed in float32 and the result is
    returned in the input dtype, as Mamba's reference ``rms_norm_ref(upcast=True)``.

    Args:
        dim: size of the last dimension (the parameter ``weight`` has this size).
        eps: added to the mean square before the reciprocal square root.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        rstd = torch.rsqrt(x32.square().mean(dim=-1, keepdim=True) + self.eps)
        return (x32 * rstd * self.weight.float()).to(x.dtype)

    def extra_repr(self) -> str:
        return f'{self.weight.shape[0]}, eps={self.eps}'
