"""The named synthetic blurs that ``flowdeblur eval``/``demo`` and the training recipes all take as ``--blur NAME``.

The names and their help import nothing but ``typing``, so that ``flowdeblur --help`` lists them without torch;
:func:`blur_preset` builds the blur a name stands for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from .blur import BlurMixture, BlurSpec

BlurPresetName = Literal["paper", "mix", "mix-blurred", "none"]
BLUR_PRESETS: tuple[str, ...] = get_args(BlurPresetName)
BLUR_PRESETS_HELP = (
    "paper, the 3x3 Gaussian (sigma 1); mix, the default blur mixture (docs/datasets.md#synthetic-blur); "
    "mix-blurred, the mixture without its no-blur draws; none, the sharp images themselves"
)


def blur_preset(name: BlurPresetName) -> BlurSpec | BlurMixture:
    """The blur a preset names (one of :data:`BLUR_PRESETS`)."""
    from .blur import BlurMixture, BlurSpec

    presets: dict[str, BlurSpec | BlurMixture] = {
        "paper": BlurSpec(),
        "mix": BlurMixture(),
        "mix-blurred": BlurMixture(none=0.0),
        "none": BlurSpec(kind="none", kernel_size=1),
    }
    return presets[name]
