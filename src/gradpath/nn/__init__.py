"""Layer- and stage-level parts of the paper's strategies. Of gradpath, imports only the leaf module `errors`."""
from gradpath.nn.blocks import DenseBlock, OSABlock, bottleneck_block, res_block, resx_block
from gradpath.nn.conv import ConvBNAct, fuse_conv_bn, fuse_model, make_act, to_channels_last
from gradpath.nn.csp import FUSIONS, CSPStage
from gradpath.nn.elan import ELAN
from gradpath.nn.residual import (
    AsymmetricResidual,
    MaskedResidual,
    Residual,
    asymmetric_add,
    masked_add,
    masked_channels,
)

__all__ = [
    "ConvBNAct", "fuse_conv_bn", "fuse_model", "make_act", "to_channels_last",
    "Residual", "MaskedResidual", "AsymmetricResidual", "asymmetric_add", "masked_add", "masked_channels",
    "res_block", "bottleneck_block", "resx_block", "DenseBlock", "OSABlock",
    "CSPStage", "FUSIONS", "ELAN",
]
