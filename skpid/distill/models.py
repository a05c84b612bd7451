"""Small reference networks for digits-sized data (demo, examples, benchmarks, tests).

Their sizes are constructor arguments, so ``module__width=...`` can be grid-searched.
"""

from __future__ import annotations

from torch import nn


class MLP(nn.Module):
    """``Linear–BN–ReLU`` blocks then a linear head; layer ``"body"`` is the last hidden
    representation, ``"body.<i>"`` the individual layers.

    Parameters
    ----------
    n_features : int, default=64
        Input dimension (inputs are flattened).
    hidden : int, default=32
        Width of every hidden layer.
    n_classes : int, default=10
    depth : int, default=1
        Number of hidden ``Linear–BN–ReLU`` blocks.
    batch_norm : bool, default=True
        Whether the blocks have a BatchNorm layer.

    Examples
    --------
    >>> import torch
    >>> MLP(64, hidden=16, n_classes=10)(torch.zeros(3, 64)).shape
    torch.Size([3, 10])
    """

    def __init__(self, n_features: int = 64, hidden: int = 32, n_classes: int = 10,
                 depth: int = 1, batch_norm: bool = True):
        super().__init__()
        layers, width = [], n_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden)]
            layers += [nn.BatchNorm1d(hidden)] if batch_norm else []
            layers += [nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.head(self.body(x.flatten(1)))


class SmallCNN(nn.Module):
    """Two 3×3 convolution blocks (``"features"``, maps of ``width`` channels at the
    input resolution), average pooling to 2×2 (``"pool"``) and a linear head.

    Parameters
    ----------
    width : int, default=16
        Channels of both convolutions.
    n_classes : int, default=10
    in_channels : int, default=1

    Examples
    --------
    >>> import torch
    >>> SmallCNN(width=8)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, width: int = 16, n_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(4 * width, n_classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)))
