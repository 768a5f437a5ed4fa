"""Real data in training: variant names, the few-shot subsets, fine-tuning from a checkpoint, the pseudo-real
PASCAL3D+ release read back by the real reader, and the protocol tables built from metrics rows."""

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from test_pose import SETTINGS, _data

from dst3d import protocols, tables
from dst3d.config_schema import validate_config
from dst3d.inputs import datasets, pseudo_real
from dst3d.training import loop, pose
from dst3d.training.variants import few_shot, parse_variant

SOURCES = ["pascal3d", "pseudo"]


@pytest.mark.parametrize(
    ("name", "kind", "synthetic", "source", "shots"),
    [
        ("composite-kcf", "synthetic", "composite-kcf", None, None),
        ("controlnet-sdxl-all", "synthetic", "controlnet-sdxl-all", None, None),
        ("real-pascal3d", "real", None, "pascal3d", None),
        ("real-pascal3d-7shot", "real", None, "pascal3d", 7),
        ("composite-kcf_then_real-pseudo-50shot", "finetune", "composite-kcf", "pseudo", 50),
        ("controlnet-all_plus_real-pascal3d", "mixed", "controlnet-all", "pascal3d", None),
    ],
)
def test_variant_names_parse_into_their_parts(name, kind, synthetic, source, shots):
    variant = parse_variant(name, SOURCES)
    assert (variant.kind, variant.synthetic, variant.source, variant.shots) == (kind, synthetic, source, shots)
    if source is not None:
        assert variant.subset == ("all" if shots is None else f"{shots}shot")
        assert name.endswith(variant.real)
    if synthetic is not None:
        assert f"{variant.backend}-{variant.selection}" == synthetic


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("real-objectnet3d", "not a train.real entry (train.real names: pascal3d, pseudo)"),
        ("composite-none", "is not a real variant"),
        ("sdxl-kcf_then_real-pascal3d", "'sdxl-kcf' is not a synthetic variant"),
        ("composite-kcf_then_composite-all", "'composite-all' is not a real variant"),
        ("real-pascal3d-0shot", "at least 1"),
    ],
)
def test_bad_variant_names_say_what_is_wrong(name, expected):
    with pytest.raises(ValueError, match="training variant") as error:
        parse_variant(name, SOURCES)
    assert expected in str(error.value)


def _objects(per_category=60):
    rows = [
        {"image_id": f"{category}/{index:03d}", "category": category, "azimuth": 0.1 * index}
        for category in ("car", "boat")
        for index in range(per_category)
    ]
    return pd.DataFrame(rows)


def test_few_shot_subsets_are_nested_seeded_and_independent_of_row_order():
    frame = _objects()
    subsets = {shots: set(few_shot(frame, shots, 0, "pseudo")["image_id"]) for shots in (7, 20, 50)}
    assert subsets[7] < subsets[20] < subsets[50]
    for shots, ids in subsets.items():
        assert sorted(pd.Series(sorted(ids)).str.split("/").str[0].value_counts()) == [shots, shots]
    shuffled = frame.sample(frac=1, random_state=3)
    assert set(few_shot(shuffled, 20, 0, "pseudo")["image_id"]) == subsets[20]
    assert set(few_shot(frame, 20, 1, "pseudo")["image_id"]) != subsets[20]  # another seed, another draw
    assert set(few_shot(frame, 20, 0, "other")["image_id"]) != subsets[20]  # another source, another draw
    assert len(few_shot(frame, None, 0, "pseudo")) == len(frame)


def test_a_category_with_too_few_objects_is_named():
    frame = pd.concat([_objects(10), _objects(60).query("category == 'boat'")])
    with pytest.raises(ValueError, match="category 'car' has 10 objects, fewer than the 20"):
        few_shot(frame.drop_duplicates("image_id"), 20, 0, "pseudo")


def test_fine_tuning_starts_from_the_given_weights_and_records_them_in_the_fingerprint(tmp_path):
    images, labels, ids = _data()
    trained = loop.train(images, labels, ids, {**SETTINGS, "epochs": 2}, seed=1, threads=1, task=pose.POSE)
    start = {key: value.clone() for key, value in trained.model.state_dict().items()}
    # With a learning rate of 1e-12 the weights cannot move: the fine-tuned model is the initial one.
    frozen = {**SETTINGS, "epochs": 1, "lr": 1e-12, "weight_decay": 0.0, "momentum": 0.0}
    tuned = loop.train(images, labels, ids, frozen, seed=2, threads=1, task=pose.POSE, init=(start, "abc"))
    from_scratch = loop.train(images, labels, ids, frozen, seed=2, threads=1, task=pose.POSE)
    for key, value in tuned.model.state_dict().items():
        if value.is_floating_point() and "running" not in key:  # batch-norm statistics move without gradients
            assert torch.allclose(value, start[key], atol=1e-6), key
    assert not torch.allclose(from_scratch.model.fc.weight, start["fc.weight"])
    # A resume state written for other initial weights is not taken up.
    resume = tmp_path / "resume.pt"
    loop.train(images, labels, ids, frozen, seed=2, threads=1, task=pose.POSE, init=(start, "abc"), resume_path=resume)
    again = loop.train(
        images,
        labels,
        ids,
        {**frozen, "epochs": 2},
        seed=2,
        threads=1,
        task=pose.POSE,
        init=(start, "def"),
        resume_path=resume,
    )
    assert [h["epoch"] for h in again.history] == [1, 2]  # started over, not resumed after epoch 1


def _render_records(tmp_path, count=6):
    """Render records with RGBA renders (an opaque rectangle of a known colour) and background photos."""
    rows = []
    background = tmp_path / "background.png"
    cv2.imwrite(str(background), np.full((64, 80, 3), (10, 200, 30), np.uint8))
    for index in range(count):
        rgba = np.zeros((48, 48, 4), np.uint8)
        x0, y0, x1, y1 = 4 + index, 6, 30 + index, 40 - index
        rgba[y0:y1, x0:x1] = (250, 20, 120, 255)
        path = tmp_path / f"render_{index}.png"
        cv2.imwrite(str(path), rgba)
        category = "airplane" if index % 2 else "car"
        rows.append(
            {
                "image_id": f"pseudo_train-{category}-{index:06d}",
                "category": category,
                "image_index": index,
                "azimuth": 0.3 + index,
                "elevation": 0.2 - 0.05 * index,
                "theta": -0.1 * index,
                "distance": 2.5,
                "bbox_x0": x0,
                "bbox_y0": y0,
                "bbox_x1": x1,
                "bbox_y1": y1,
                "render_path": str(path),
                "background_path": str(background),
            }
        )
    return pd.DataFrame(rows)


def test_pseudo_real_release_reads_back_through_the_pascal3d_reader(tmp_path):
    records = _render_records(tmp_path)
    root = tmp_path / "PASCAL3D"
    pseudo_real.write_pascal3d(root, {"pseudo_train": records}, coarse_fraction=0.0, global_seed=0)
    assert sorted(path.name for path in (root / "Annotations").iterdir()) == ["aeroplane_imagenet", "car_imagenet"]
    read = datasets.read_pascal3d(root, "train", sources=("imagenet",))
    assert len(read) == len(records)  # the unannotated second object of every image is skipped
    assert set(read["category"]) == {"aeroplane", "car"}  # PASCAL3D+'s names
    by_index = {
        int(path.rsplit("_", 1)[-1].split(".")[0]): row
        for path, row in zip(read["image_path"], read.itertuples(), strict=True)
    }
    for record in records.itertuples():
        row = by_index[record.image_index]
        assert (row.bbox_x0, row.bbox_y0, row.bbox_x1, row.bbox_y1) == (
            record.bbox_x0,
            record.bbox_y0,
            record.bbox_x1,
            record.bbox_y1,
        )
        assert row.azimuth == pytest.approx(record.azimuth % (2 * np.pi))
        assert row.elevation == pytest.approx(record.elevation)
        assert row.theta == pytest.approx(record.theta)
        assert row.viewpoint == "fine"
        # What the image shows: the render's colour inside the box, the background outside it (JPEG-close).
        image = cv2.imread(row.image_path).astype(int)
        inside = image[record.bbox_y0 + 2 : record.bbox_y1 - 2, record.bbox_x0 + 2 : record.bbox_x1 - 2]
        assert np.abs(inside - (250, 20, 120)).max() < 40
        assert np.abs(image[45:, 40:] - (10, 200, 30)).max() < 40
    # Through load_real_set, aeroplane becomes the workflow's airplane.
    entry = {"name": "pseudo", "format": "pascal3d", "root": str(root), "split": "train", "sources": ["imagenet"]}
    assert set(datasets.load_real_set(entry, ["car", "airplane"])["category"]) == {"car", "airplane"}


def test_pseudo_real_coarse_objects_have_empty_fine_fields_and_rounded_coarse_angles(tmp_path):
    records = _render_records(tmp_path)
    root = tmp_path / "PASCAL3D"
    pseudo_real.write_pascal3d(root, {"pseudo_train": records}, coarse_fraction=1.0, global_seed=0)
    assert datasets.read_pascal3d(root, "train", sources=("imagenet",), viewpoint_mode="fine").empty
    read = datasets.read_pascal3d(root, "train", sources=("imagenet",))
    assert (read["viewpoint"] == "coarse").all() and (read["theta"] == 0).all() and read["distance"].isna().all()
    step = np.radians(pseudo_real.COARSE_STEP_DEG)
    remainder = np.mod(read["azimuth"].to_numpy(), step)
    assert np.allclose(np.minimum(remainder, step - remainder), 0, atol=1e-9)


def _metrics(variant, eval_set, acc6, acc18, median):
    rows = [
        {"category": "car", "images": 4, "acc_pi_6": 1.0, "acc_pi_18": 1.0, "median_error_deg": 1.0},
        {"category": "mean (pooled)", "images": 8, "acc_pi_6": 0.0, "acc_pi_18": 0.0, "median_error_deg": 0.0},
        {
            "category": "mean (per-category)",
            "images": 8,
            "acc_pi_6": acc6,
            "acc_pi_18": acc18,
            "median_error_deg": median,
        },
    ]
    table = pd.DataFrame(rows)
    table.insert(0, "variant", variant)
    table.insert(1, "eval_set", eval_set)
    return table.assign(
        manifest_hash=f"m-{variant}", checkpoint_sha256=f"c-{variant}", metrics_file=f"{variant}/{eval_set}.csv"
    )


def test_few_shot_table_puts_each_variant_in_its_cell_and_averages_the_shots():
    table = {
        "source": "pseudo",
        "eval_set": "val",
        "shots": [7, 20],
        "synthetic": "composite-kcf",
        "rows": ["real", "finetune"],
    }
    metrics = pd.concat(
        [
            _metrics("real-pseudo-7shot", "val", 0.1, 0.01, 90.0),
            _metrics("real-pseudo-20shot", "val", 0.3, 0.03, 50.0),
            _metrics("composite-kcf_then_real-pseudo-7shot", "val", 0.6, 0.2, 20.0),
            _metrics("composite-kcf_then_real-pseudo-20shot", "val", 0.8, 0.4, 10.0),
            _metrics("real-pseudo-7shot", "other", 0.9, 0.9, 1.0),
        ]
    )
    result, provenance = protocols.few_shot_table(metrics, table)
    assert list(result["training_data"]) == ["real only", "synthetic, then fine-tuned on real"]
    assert list(result.columns[:4]) == ["training_data", "7shot/acc_pi_6", "7shot/acc_pi_18", "7shot/median_error_deg"]
    real = result.iloc[0]
    assert (real["7shot/acc_pi_6"], real["20shot/acc_pi_6"], real["mean/acc_pi_6"]) == (0.1, 0.3, pytest.approx(0.2))
    assert result.iloc[1]["mean/median_error_deg"] == pytest.approx(15.0)
    assert set(provenance["checkpoint_sha256"]) == {f"c-{name}" for name in metrics["variant"].unique()} - {"c-x"}
    markdown = tables.markdown(result, "caption")
    assert "| real only | 10.0 | 1.0 | 90.0 | 30.0 | 3.0 | 50.0 | 20.0 | 2.0 | 70.0 |" in markdown
    latex = tables.latex(result, "caption")
    assert r"\toprule" in latex and r"7shot/Acc@$\pi$/6" in latex and "real only & 10.0" in latex


def test_pose_protocol_table_has_a_row_per_variant_and_two_columns_per_set():
    table = {"variants": ["composite-kcf", "real-p"], "in_distribution": ["id"], "out_of_distribution": ["ood"]}
    metrics = pd.concat(
        [_metrics(variant, eval_set, 0.5, 0.25, 9.0) for variant in table["variants"] for eval_set in ("id", "ood")]
    )
    result, provenance = protocols.pose_protocol_table(metrics, table)
    assert list(result.columns) == ["variant", "id/acc_pi_6", "id/acc_pi_18", "ood/acc_pi_6", "ood/acc_pi_18"]
    assert len(provenance) == 4 and set(provenance["table_row"]) == set(table["variants"])
    with pytest.raises(ValueError, match="0 'mean \\(per-category\\)' rows of composite-kcf on missing"):
        protocols.pose_protocol_table(metrics, {**table, "out_of_distribution": ["missing"]})


def _nemo(frame, acc6):
    """A metrics table as NeMo's evaluation writes it: estimator nemo first, its own numbers and checkpoint."""
    frame = frame.assign(acc_pi_6=acc6, checkpoint_sha256="nemo-" + frame["checkpoint_sha256"])
    frame.insert(0, "estimator", "nemo")
    return frame


def test_pose_protocol_table_puts_nemo_rows_after_the_resnets_with_the_estimator_first():
    table = {"variants": ["composite-kcf", "real-p"], "in_distribution": ["id"], "out_of_distribution": []}
    resnet = pd.concat([_metrics(variant, "id", 0.5, 0.25, 9.0) for variant in table["variants"]])
    nemo = pd.concat(
        [
            _nemo(_metrics("composite-kcf", "id", 0.0, 0.1, 9.0), 0.7),
            _nemo(_metrics("composite-kcf+cc3d", "id", 0.0, 0.1, 9.0), 0.8),
        ]
    )
    metrics = tables.with_estimator(pd.concat([resnet, nemo], ignore_index=True))
    result, provenance = protocols.pose_protocol_table(metrics, table, ["composite-kcf", "composite-kcf+cc3d"])
    assert list(result.columns) == ["estimator", "variant", "id/acc_pi_6", "id/acc_pi_18"]
    assert list(zip(result["estimator"], result["variant"], result["id/acc_pi_6"], strict=True)) == [
        ("resnet", "composite-kcf", 0.5),
        ("resnet", "real-p", 0.5),
        ("nemo", "composite-kcf", 0.7),
        ("nemo", "composite-kcf+cc3d", 0.8),
    ]
    assert list(provenance["estimator"]) == ["resnet", "resnet", "nemo", "nemo"]
    assert list(provenance["checkpoint_sha256"])[2:] == ["nemo-c-composite-kcf", "nemo-c-composite-kcf+cc3d"]
    # Without NeMo models the same metrics give the table as before: no estimator column, ResNet rows only.
    plain, _ = protocols.pose_protocol_table(metrics, table)
    assert list(plain.columns) == ["variant", "id/acc_pi_6", "id/acc_pi_18"] and len(plain) == 2


def test_few_shot_table_has_nemo_rows_with_empty_cells_for_shots_nemo_did_not_train():
    table = {"source": "pseudo", "eval_set": "val", "shots": [7, 20], "synthetic": "composite-kcf", "rows": ["real"]}
    resnet = [_metrics(f"real-pseudo-{n}shot", "val", 0.1 * n, 0.01, 9.0) for n in (7, 20)]
    nemo = [
        _nemo(_metrics("real-pseudo-7shot", "val", 0.0, 0.0, 5.0), 0.9),
        _nemo(_metrics("real-pseudo-7shot+cc3d", "val", 0.0, 0.0, 5.0), 0.95),
        _nemo(_metrics("real-pseudo-20shot+cc3d", "val", 0.0, 0.0, 5.0), 0.85),
    ]
    metrics = tables.with_estimator(pd.concat([*resnet, *nemo], ignore_index=True))
    models = ["real-pseudo-7shot", "real-pseudo-7shot+cc3d", "real-pseudo-20shot+cc3d"]
    result, provenance = protocols.few_shot_table(metrics, table, models)
    assert list(result.columns[:3]) == ["estimator", "training_data", "7shot/acc_pi_6"]
    assert list(result["training_data"]) == ["real only", "real only", "real only" + protocols.CC3D_LABEL]
    assert list(result["estimator"]) == ["resnet", "nemo", "nemo"]
    nemo_row, cc3d_row = result.iloc[1], result.iloc[2]
    assert (
        nemo_row["7shot/acc_pi_6"] == 0.9
        and pd.isna(nemo_row["20shot/acc_pi_6"])
        and pd.isna(nemo_row["mean/acc_pi_6"])
    )
    assert cc3d_row["mean/acc_pi_6"] == pytest.approx(0.9)
    assert len(provenance) == 2 + 1 + 2 and set(provenance["estimator"]) == {"resnet", "nemo"}


def test_nemo_models_of_each_table():
    config = _config(
        tables={
            "pose_protocol": {"variants": ["composite-kcf"], "in_distribution": ["val"]},
            "few_shot": {"source": "pseudo", "eval_set": "val", "shots": [7]},
        },
        nemo={
            "variants": ["composite-kcf_then_real-pseudo-7shot"],
            "cc3d": {"variants": ["composite-kcf_then_real-pseudo-7shot"]},
        },
    )
    models = ["composite-kcf_then_real-pseudo-7shot", "composite-kcf", "composite-kcf_then_real-pseudo-7shot+cc3d"]
    assert protocols.table_nemo_models(config, "pose_protocol") == models
    assert protocols.table_nemo_models(config, "few_shot") == [models[0], models[2]]
    config["tables"]["few_shot"] = None
    assert protocols.table_nemo_models(config, "few_shot") == []


def _config(**overrides):
    config = {
        "categories": ["car"],
        "train": {"real": [{"name": "pseudo", "format": "pascal3d", "root": "r", "split": "train"}]},
        "evaluate": {"real_sets": [{"name": "val", "format": "pascal3d", "root": "r"}]},
        **overrides,
    }
    validate_config(config)
    return config


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        (
            {"few_shot": {"source": "nope", "eval_set": "val"}},
            "tables.few_shot.source 'nope' is not a train.real entry",
        ),
        ({"few_shot": {"source": "pseudo", "eval_set": "test"}}, "reads the evaluation set 'test', which is none of"),
        (
            {"few_shot": {"source": "pseudo", "eval_set": "val", "synthetic": "real-pseudo"}},
            "tables.few_shot.synthetic 'real-pseudo' must be a synthetic variant",
        ),
        (
            {"pose_protocol": {"variants": ["real-pascal"], "in_distribution": ["val"]}},
            "tables.pose_protocol: training variant 'real-pascal'",
        ),
    ],
)
def test_bad_protocol_tables_name_the_key(tables, expected):
    with pytest.raises(ValueError, match="config: ") as error:
        protocols.check_protocols(_config(tables=tables))
    assert expected in str(error.value)


def test_table_variants_are_trained_and_a_source_name_must_fit_variant_names():
    config = _config(
        tables={"few_shot": {"source": "pseudo", "eval_set": "val", "shots": [7, 20], "rows": ["finetune"]}}
    )
    protocols.check_protocols(config)
    assert protocols.training_variants(config) == [
        "composite-kcf",
        "composite-kcf_then_real-pseudo-7shot",
        "composite-kcf_then_real-pseudo-20shot",
    ]
    bad = _config()
    bad["train"]["real"][0]["name"] = "pascal_3d"
    with pytest.raises(ValueError, match="train.real name 'pascal_3d'"):
        protocols.check_protocols(bad)
