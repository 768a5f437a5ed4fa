"""The published systems' model tables and folder layouts, read as released: the 3D-DST model table (positional
columns, ShapeNet v1/v2 and Objaverse layouts), a PASCAL3D+ CAD folder, missing models, and a render of the
stand-in tree through the workflow."""

import pandas as pd
import pytest
import yaml
from test_workflow import REPO
from workflow_runs import run

from dst3d.inputs import official
from dst3d.inputs.catalog import AssetError
from dst3d.inputs.meshes import write_obj
from dst3d.tables import read_csv
from dst3d.testing import stand_in


def _official_tree(root):
    """Every way a model id resolves, and the quirks of the real table (its own header names, a float sampling
    mode, rows of other synsets)."""
    box, faces = stand_in._BOX_CORNERS, stand_in._BOX_FACES
    shapenet = root / "ShapeNetCore"
    for synset, model_id, relative in (
        ("02958343", "aaa1", "models/model_normalized.obj"),  # ShapeNetCore v2
        ("02958343", "aaa2", "model_normalized.obj"),
        ("03001627", "aaa3", "model.obj"),  # ShapeNetCore v1
    ):
        (shapenet / synset / model_id / relative).parent.mkdir(parents=True, exist_ok=True)
        write_obj(shapenet / synset / model_id / relative, box, faces)
    objaverse = root / "objaverse"
    stand_in.write_glb(objaverse / "bbb1.glb", box, faces)
    stand_in.write_glb(objaverse / "glbs" / "000-023" / "bbb2.glb", box, faces)
    table = root / "3d-dst-models.csv"
    table.write_text(
        "synset_id,uid,distance,azimuth,elevation,strength,sampling\n"
        "n02690373,aaa1,2.0,90,0,1,3\n"
        "n02690373,bbb1,2.5,0,-10,1,3.0\n"
        "n04285008,aaa2,1.5,180,5,2,1\n"
        "n04285008,bbb2,1.5,0,0,1,2\n"
        "n03000000,aaa3,1.5,0,0,1,1\n"
    )
    return table, shapenet, objaverse


def test_3d_dst_table_resolves_shapenet_and_objaverse_as_the_official_loader(tmp_path):
    table, shapenet, objaverse = _official_tree(tmp_path)
    models = official.read_official_table(table, ["n02690373", "n04285008"], str(shapenet), str(objaverse), False)
    assert list(models["model_id"]) == ["aaa1", "bbb1", "aaa2", "bbb2"]  # other synsets left out
    by_id = models.set_index("model_id")
    assert by_id.loc["aaa1", "path"].endswith("aaa1/models/model_normalized.obj")
    assert by_id.loc["aaa2", "path"].endswith("aaa2/model_normalized.obj")
    assert by_id.loc["bbb2", "path"].endswith("glbs/000-023/bbb2.glb")
    assert list(models["format"]) == ["obj", "gltf", "obj", "gltf"]
    assert list(models["sampling_mode"]) == ["3", "3", "1", "2"]
    assert float(by_id.loc["aaa1", "azimuth_offset_deg"]) == 90 and float(by_id.loc["bbb1", "distance"]) == 2.5
    assert float(by_id.loc["bbb1", "elevation_offset_deg"]) == -10
    # A ShapeNet v1 model (model.obj) resolves too.
    v1 = official.read_official_table(table, ["n03000000"], str(shapenet), None, False)
    assert v1["path"].iloc[0].endswith("aaa3/model.obj")


def test_missing_models_stop_with_their_ids_unless_skipped(tmp_path):
    table, shapenet, objaverse = _official_tree(tmp_path)
    with pytest.raises(AssetError, match=r"2 of the table's models .* bbb1 \(line 3, n02690373\)") as error:
        official.read_official_table(table, ["n02690373", "n04285008"], str(shapenet), None, False)
    assert "skip_missing_models" in str(error.value)
    kept = official.read_official_table(table, ["n02690373", "n04285008"], str(shapenet), None, True)
    assert list(kept["model_id"]) == ["aaa1", "aaa2"]
    with pytest.raises(AssetError, match="shapenet_dir and/or objaverse_dir"):
        official.read_official_table(table, ["n02690373"], None, None, False)
    (tmp_path / "short.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(AssetError, match="by position"):
        official.read_official_table(tmp_path / "short.csv", ["1"], str(shapenet), None, False)


def test_pascal3d_cad_folder_is_a_model_table(tmp_path):
    stand_in.write_pascal3d_cad(tmp_path, ["car", "boat"], models_per_category=3)
    models = official.read_pascal3d_cad(tmp_path / "CAD", ["car", "boat"], 5.0)
    assert list(models["model_id"]) == ["01", "02", "03"] * 2 and set(models["sampling_mode"]) == {"p3d"}
    assert set(models["format"]) == {"off"} and set(models["distance"].astype(float)) == {5.0}
    with pytest.raises(AssetError, match="bus: no .off files"):
        official.read_pascal3d_cad(tmp_path / "CAD", ["bus"], 5.0)
    with pytest.raises(AssetError, match="cad_distance"):
        official.read_pascal3d_cad(tmp_path / "CAD", ["car"], None)
    per_category = official.read_pascal3d_cad(tmp_path / "CAD", ["car", "boat"], {"car": 6, "boat": 8})
    assert per_category.groupby("category")["distance"].first().astype(float).to_dict() == {"boat": 8.0, "car": 6.0}
    with pytest.raises(AssetError, match="no distance for the category 'boat'"):
        official.read_pascal3d_cad(tmp_path / "CAD", ["car", "boat"], {"car": 6})


@pytest.mark.slow
def test_a_3d_dst_stand_in_tree_renders_through_the_workflow(tmp_path):
    categories = ["n02690373", "n04285008"]
    folders = stand_in.write_3d_dst(tmp_path / "data", categories)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for key, value in yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text()).items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    config["categories"] = categories
    config["assets"] = {"source": "folders", "folders": folders}
    config["export"] = {"formats": ["coco", "nemo", "card"]}  # BOP cannot read the Objaverse .glb stand-ins
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    target = "results/render/train/n04285008/000.parquet"
    result = run(tmp_path, "--cores", "2", target, configfiles=[path])
    assert result.returncode == 0, result.stderr[-4000:]
    models = read_csv(tmp_path / "results" / "assets" / "models.csv", dtype=str)
    assert set(models["format"]) == {"obj", "gltf"} and len(models) == 4
    records = pd.read_parquet(tmp_path / target)
    assert set(records["model_id"]) == set(models.loc[models["category"] == "n04285008", "model_id"])
    assert (records["bbox_x1"] > records["bbox_x0"]).all()  # both files rendered an object


def test_bop_with_objaverse_models_is_refused_before_any_job(tmp_path):
    folders = stand_in.write_3d_dst(tmp_path / "data", ["n02690373", "n04285008"])
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["categories"] = ["n02690373", "n04285008"]
    config["assets"] = {"source": "folders", "folders": folders}
    assert "bop" in config["export"]["formats"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run(tmp_path, "-n", configfiles=[path])
    assert result.returncode != 0
    output = result.stderr + result.stdout
    assert "export.formats has 'bop'" in output and "leave bop out of export.formats" in output
