"""Official metadata of every MedMNIST v2/v3 flag (after ``medmnist.INFO``): task type, channels, class names.

2D flags exist in sizes 28, 64, 128 and 224 (MedMNIST+); 3D flags in sizes 28 and 64 (Yang et al. 2023,
"MedMNIST v2", Scientific Data 10:41).
"""

from __future__ import annotations

from dataclasses import dataclass

from medrobust.errors import ConfigError, UnknownNameError
from medrobust.registry import unknown_name_message

SIZES_2D = (28, 64, 128, 224)
SIZES_3D = (28, 64)


@dataclass(frozen=True)
class FlagInfo:
    """Official metadata of one MedMNIST flag.

    Attributes:
        task: the MedMNIST task type (``"multi-class"``, ``"binary-class"``, ``"multi-label, binary-class"``,
            ``"ordinal-regression"``).
        channels: 1 (grey) or 3 (RGB).
        class_names: one name per class, or per label for multi-label.
        positive_class: the abnormal class of a binary task (its recall is the sensitivity).
        spatial_dims: 2 (images) or 3 (volumes ``D×H×W``).
    """

    task: str
    channels: int
    class_names: tuple[str, ...]
    positive_class: int = 1
    spatial_dims: int = 2

    @property
    def sizes(self) -> tuple[int, ...]:
        """The published image sizes of this flag."""
        return SIZES_3D if self.spatial_dims == 3 else SIZES_2D

    @property
    def task_kind(self) -> str:
        """medrobust's task kind; ordinal regression is treated as multi-class."""
        return {"binary-class": "binary", "multi-label, binary-class": "multilabel"}.get(self.task, "multiclass")


_ORGANS = (
    "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
    "liver", "lung-left", "lung-right", "pancreas", "spleen",
)  # fmt: skip

INFO: dict[str, FlagInfo] = {
    "pathmnist": FlagInfo("multi-class", 3, (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
        "cancer-associated stroma", "colorectal adenocarcinoma epithelium",
    )),
    "chestmnist": FlagInfo("multi-label, binary-class", 1, (
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
        "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia",
    )),
    "dermamnist": FlagInfo("multi-class", 3, (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
        "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions",
    )),
    "octmnist": FlagInfo("multi-class", 1, (
        "choroidal neovascularization", "diabetic macular edema", "drusen", "normal",
    )),
    "pneumoniamnist": FlagInfo("binary-class", 1, ("normal", "pneumonia")),
    "retinamnist": FlagInfo("ordinal-regression", 3, ("0", "1", "2", "3", "4")),
    "breastmnist": FlagInfo("binary-class", 1, ("malignant", "normal, benign"), positive_class=0),
    "bloodmnist": FlagInfo("multi-class", 3, (
        "basophil", "eosinophil", "erythroblast", "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
        "lymphocyte", "monocyte", "neutrophil", "platelet",
    )),
    "tissuemnist": FlagInfo("multi-class", 1, (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
        "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments",
        "Thick Ascending Limb",
    )),
    "organamnist": FlagInfo("multi-class", 1, _ORGANS),
    "organcmnist": FlagInfo("multi-class", 1, _ORGANS),
    "organsmnist": FlagInfo("multi-class", 1, _ORGANS),
}  # fmt: skip
"""2D flags, after the official ``medmnist.INFO`` metadata."""


INFO_3D: dict[str, FlagInfo] = {
    "organmnist3d": FlagInfo("multi-class", 1, (
        "liver", "kidney-right", "kidney-left", "femur-right", "femur-left", "bladder", "heart", "lung-right",
        "lung-left", "spleen", "pancreas",
    ), spatial_dims=3),
    "nodulemnist3d": FlagInfo("binary-class", 1, ("benign", "malignant"), spatial_dims=3),
    "adrenalmnist3d": FlagInfo("binary-class", 1, ("normal", "hyperplasia"), spatial_dims=3),
    "fracturemnist3d": FlagInfo("multi-class", 1, (
        "buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture",
    ), spatial_dims=3),
    "vesselmnist3d": FlagInfo("binary-class", 1, ("vessel", "aneurysm"), spatial_dims=3),
    "synapsemnist3d": FlagInfo("binary-class", 1, ("inhibitory synapse", "excitatory synapse"), spatial_dims=3),
}  # fmt: skip
"""3D flags (note: OrganMNIST3D orders its organs differently from the 2D Organ{A,C,S}MNIST)."""

ALL_FLAGS: dict[str, FlagInfo] = {**INFO, **INFO_3D}


def flag_info(flag: str) -> FlagInfo:
    """Metadata of ``flag`` (2D or 3D); :class:`UnknownNameError` with suggestions for unknown flags."""
    if flag not in ALL_FLAGS:
        raise UnknownNameError(unknown_name_message("MedMNIST flag", flag, list(ALL_FLAGS)))
    return ALL_FLAGS[flag]


def check_size(flag: str, size: int) -> None:
    """``size`` must be one of the flag's published sizes."""
    info = flag_info(flag)
    if size not in info.sizes:
        kind = "3D" if info.spatial_dims == 3 else "2D"
        raise ConfigError(
            f"MedMNIST size {size!r} is not one of {', '.join(map(str, info.sizes))} ({kind} flag {flag!r})"
        )
