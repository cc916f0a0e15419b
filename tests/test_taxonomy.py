from pathlib import Path

import pytest
import yaml

from portrait_builder.errors import UserError
from portrait_builder.taxonomy import load_taxonomy

PAPER_ATTRIBUTES = ["identity", "gender", "age", "physique", "height", "body_posture", "arm_posture", "expression"]


def test_shipped_taxonomy_has_the_paper_label_set():
    tax = load_taxonomy()
    assert list(tax.names) == PAPER_ATTRIBUTES
    aspects = {a.name: a.aspect for a in tax.attributes}
    assert {n for n, a in aspects.items() if a == "appearance"} == {"identity", "gender", "age", "physique", "height"}
    assert {n for n, a in aspects.items() if a == "posture"} == {"body_posture", "arm_posture"}
    assert aspects["expression"] == "emotion"
    expression = tax.attribute("expression")
    assert expression.multilabel
    # the seven basic expressions plus "unsure"
    assert set(expression.classes) == {"neutral", "happiness", "sadness", "anger", "fear", "surprise", "disgust"}
    for attr in tax.attributes:
        assert attr.unsure_value == "unsure"
        hotkeys = [v.hotkey for v in attr.values]
        assert len(hotkeys) == len(set(hotkeys))


def test_encode_and_decode():
    tax = load_taxonomy()
    assert tax.encode("gender", "female") == "female"
    # multi-label values are stored in taxonomy order, deduplicated
    assert tax.encode("expression", ["surprise", "happiness", "surprise"]) == "happiness|surprise"
    assert tax.decode("expression", "happiness|surprise") == ["happiness", "surprise"]
    assert tax.encode("identity", 12) == "12"
    assert tax.encode("identity", "unknown") == "unknown"


@pytest.mark.parametrize(
    "attribute,value,message",
    [
        ("gender", "robot", "invalid value 'robot' for gender"),
        ("colour", "red", "unknown attribute 'colour'"),
        ("expression", ["happiness", "bored"], "invalid value 'bored' for expression"),
        ("expression", ["unsure", "fear"], "cannot be combined"),
        ("expression", [], "empty value"),
        ("identity", "-3", "expected an identity id"),
        ("age", ["child"], "invalid value"),
    ],
)
def test_invalid_values_rejected(attribute, value, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        load_taxonomy().encode(attribute, value)


def _write(tmp_path, data):
    path = tmp_path / "tax.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_taxonomy_files(tmp_path):
    good = yaml.safe_load(Path(load_taxonomy().source).read_text())
    with pytest.raises(UserError, match="not found"):
        load_taxonomy(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("attributes: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_taxonomy(tmp_path / "broken.yaml")
    bad_aspect = yaml.safe_load(yaml.safe_dump(good))
    bad_aspect["attributes"][2]["aspect"] = "vibe"
    with pytest.raises(UserError, match="invalid at attributes/2/aspect"):
        load_taxonomy(_write(tmp_path, bad_aspect))
    dup_hotkey = yaml.safe_load(yaml.safe_dump(good))
    dup_hotkey["attributes"][1]["values"][1]["hotkey"] = "m"
    with pytest.raises(UserError, match="same hotkey"):
        load_taxonomy(_write(tmp_path, dup_hotkey))
    no_unsure = yaml.safe_load(yaml.safe_dump(good))
    no_unsure["attributes"][3]["values"] = [v for v in no_unsure["attributes"][3]["values"] if not v.get("unsure")]
    with pytest.raises(UserError, match="exactly one value marked unsure"):
        load_taxonomy(_write(tmp_path, no_unsure))


def test_custom_taxonomy(tmp_path):
    custom = {
        "schema_version": 1,
        "name": "tiny",
        "attributes": [
            {"name": "hat", "aspect": "appearance", "kind": "single",
             "values": [{"name": "yes", "hotkey": "y"}, {"name": "no", "hotkey": "n"}, {"name": "unsure", "hotkey": "0", "unsure": True}]},
        ],
    }
    tax = load_taxonomy(_write(tmp_path, custom))
    assert tax.names == ("hat",)
    assert tax.attribute("hat").classes == ("yes", "no")
