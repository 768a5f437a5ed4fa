"""Classification sets as users have them (ImageFolder trees with the quirks of real copies), the class list,
the fine-tuning head's start, the Table 1 layout, the transformer backbones, and the config checks."""

import numpy as np
import pandas as pd
import pytest
import torch

from dst3d import classification
from dst3d.config_schema import validate_config
from dst3d.inputs import imagefolder
from dst3d.io import write_image
from dst3d.training import loop
from dst3d.training.variants import parse_variant


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(np.full((8, 8, 3), 128, np.uint8), path)


def test_imagefolder_reads_what_real_copies_hold(tmp_path):
    _image(tmp_path / "n02958343" / "a.JPEG")  # ImageNet's upper-case extension
    _image(tmp_path / "n02958343" / "b.png")
    _image(tmp_path / "n04273569" / "c.jpg")
    (tmp_path / "n04273569" / ".DS_Store").write_bytes(b"\\0")
    (tmp_path / "n04273569" / "notes.txt").write_text("not an image")
    (tmp_path / ".cache").mkdir()
    frame = imagefolder.read_imagefolder(tmp_path)
    assert imagefolder.class_folders(tmp_path) == ["n02958343", "n04273569"]
    assert list(frame["image_id"]) == ["n02958343/a", "n02958343/b", "n04273569/c"]
    assert frame[["bbox_x0", "bbox_x1"]].isna().all().all()  # the whole image is the object
    with pytest.raises(ValueError, match="not classes of the training set"):
        imagefolder.read_imagefolder(tmp_path, classes=["n02958343"])
    (tmp_path / "n09999999").mkdir()
    with pytest.raises(ValueError, match="n09999999: a class folder with no image"):
        imagefolder.read_imagefolder(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such ImageFolder root"):
        imagefolder.class_folders(tmp_path / "missing")


def test_class_list_maps_wordnet_ids_and_leaves_classes_without_generated_data(tmp_path):
    folders = ["background", "n02958343", "n04273569"]
    assert imagefolder.class_mapping(["boat", "cat"], ["car", "boat"], None) == {"boat": "boat", "cat": None}
    listing = tmp_path / "classes.csv"
    listing.write_text("folder,category\nn02958343,car\nn04273569,boat\nbackground,\n")
    assert imagefolder.class_mapping(folders, ["car", "boat"], listing) == {
        "background": None,
        "n02958343": "car",
        "n04273569": "boat",
    }
    listing.write_text("folder,category\nn02958343,bus\n")
    with pytest.raises(ValueError, match="bus"):
        imagefolder.class_mapping(folders, ["car", "boat"], listing)
    listing.write_text("wnid,name\nn02958343,car\n")
    with pytest.raises(ValueError, match="columns folder and category"):
        imagefolder.class_mapping(folders, ["car", "boat"], listing)


def test_fine_tuning_head_starts_from_the_pretrained_rows_of_mapped_classes():
    pretrained_weight = torch.arange(6.0).view(2, 3)  # categories car, boat
    pretrained_bias = torch.tensor([10.0, 20.0])
    fresh = torch.nn.Linear(3, 3)
    mapping = {"background": None, "n1": "boat", "n2": "car"}
    weight, bias = classification.initial_head(pretrained_weight, pretrained_bias, ["car", "boat"], mapping, fresh)
    assert torch.equal(weight[0], fresh.weight[0]) and bias[0] == fresh.bias[0]
    assert torch.equal(weight[1], pretrained_weight[1]) and bias[1] == 20.0
    assert torch.equal(weight[2], pretrained_weight[0]) and bias[2] == 10.0


def test_table_has_the_papers_layout():
    rows = []
    for pretraining, offset in (("none", 0.0), ("composite-kcf", 0.1)):
        for backbone in ("resnet18", "swin_t"):
            for eval_set in ("val", "rendition"):
                rows.append(
                    {
                        "pretraining": pretraining,
                        "backbone": backbone,
                        "eval_set": eval_set,
                        "category": "mean (pooled)",
                        "accuracy": 0.5 + offset + (0.2 if eval_set == "val" else 0.0),
                    }
                )
    table = classification.table(
        pd.DataFrame(rows), ["none", "composite-kcf"], ["resnet18", "swin_t"], ["val", "rendition"]
    )
    assert list(table["pretraining"]) == ["none (real only)", "composite-kcf"]
    assert table.loc[1, "swin_t/val/accuracy"] == pytest.approx(0.8)
    assert table.loc[0, "resnet18/rendition/accuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize("backbone, head", [("swin_t", "head"), ("convnext_tiny", "classifier.2")])
def test_transformer_and_convnext_backbones_get_a_task_head(backbone, head):
    model = loop.build_model(backbone, pretrained=False, outputs=5, zero_init_residual=True)
    assert loop.head_layer(model).out_features == 5
    assert f"{head}.weight" in model.state_dict()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    loop.set_head(model, torch.nn.Identity())
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 768)


def _config(**table):
    config = {
        "categories": ["car", "boat"],
        "tables": {"classification": {"train": "t", "val": "v", **table}},
    }
    validate_config(config)
    return config


def test_classification_defaults_and_checks():
    settings = classification.settings(_config())
    assert settings["backbones"] == ["resnet50"] and settings["pretraining"] == ["none"]
    assert settings["finetune"] == {"context": 1.0}
    assert classification.eval_sets(classification.settings(_config(ood={"r": "x"}))) == {"val": "v", "r": "x"}
    variants = {"real-pseudo": parse_variant("real-pseudo", ["pseudo"])}
    with pytest.raises(ValueError, match="tables.classification.pretraining 'real-pseudo'"):
        classification.check(_config(pretraining=["real-pseudo"]), variants)
    with pytest.raises(ValueError, match="in-distribution set's name"):
        classification.check(_config(ood={"val": "x"}), {})
    classification.check(_config(pretraining=["none", "composite-kcf"]), {})


def test_missing_imagenet_weights_of_a_classification_backbone_are_a_prerequisite(tmp_path, monkeypatch):
    from dst3d import preflight

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    config = _config(backbones=["swin_t"])
    config["results"] = str(tmp_path / "results")
    config["train"]["pretrained"] = True
    problems = [text for text in preflight.problems(config, environ={}) if "tables.classification" in text]
    assert len(problems) == 1 and "swin_t" in problems[0] and str(tmp_path / "torch") in problems[0]
    config["train"]["pretrained"] = False
    assert not [text for text in preflight.problems(config, environ={}) if "tables.classification" in text]
