"""Settings: default.toml, then a site file, then LIKENESS_* variables; errors name file and key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from installation.settings import DEFAULT_FILE, ConfigError, Settings, load_settings

DEFAULT = str(DEFAULT_FILE)
PATH_KEYS = ("bus.keys_dir", "bus.authorized_dir")


def _site(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _flat(values: dict, model: type[BaseModel] = Settings, prefix: str = "") -> dict[str, object]:
    """Dotted keys, down through sections and sub-sections ([bot.generative]); other tables stay whole."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        field = model.model_fields.get(key)
        inner = field.annotation if field is not None else None
        if isinstance(value, dict) and isinstance(inner, type) and issubclass(inner, BaseModel):
            flat.update(_flat(value, inner, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _error(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(*args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message, "a settings error is one line"
    return message


def test_without_a_site_file_every_value_is_the_one_in_default_toml(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with DEFAULT_FILE.open("rb") as handle:
        written = _flat(tomllib.load(handle))

    loaded = load_settings(environ={})

    values = _flat(loaded.settings.model_dump(mode="json"))
    assert values.keys() == written.keys()
    for key in [key for key, value in written.items() if str(value).startswith("~")]:
        assert values.pop(key) == written.pop(key).replace("~", str(tmp_path), 1)
    assert values == written
    assert loaded.origins == dict.fromkeys(_flat(loaded.settings.model_dump(mode="json")), DEFAULT)
    assert loaded.files == (DEFAULT_FILE,)


def test_a_site_file_overrides_its_keys_and_is_named_as_their_origin(tmp_path):
    site = _site(tmp_path, '[bus]\nheartbeat_s = 2.5\n\n[log]\nlevel = "debug"\n')

    loaded = load_settings(site, environ={})

    assert loaded.settings.bus.heartbeat_s == 2.5 and loaded.settings.log.level == "debug"
    assert loaded.origins["bus.heartbeat_s"] == str(site)
    assert loaded.origins["log.level"] == str(site)
    assert loaded.origins["bus.publish_url"] == DEFAULT
    assert loaded.settings.bus.publish_url == "tcp://127.0.0.1:7701"
    assert loaded.files == (DEFAULT_FILE, site)


def test_a_table_from_a_site_file_is_one_key_with_the_site_file_as_origin(tmp_path):
    site = _site(tmp_path, '[nodes.modules]\nlights = "gallery.lights"\n')

    loaded = load_settings(site, environ={})

    assert loaded.settings.nodes.modules == {"lights": "gallery.lights"}
    assert loaded.origins["nodes.modules"] == str(site)


def test_an_environment_variable_wins_over_the_site_file_and_is_named(tmp_path):
    site = _site(tmp_path, "[bus]\nheartbeat_s = 2.5\nsend_hwm = 50\n")

    loaded = load_settings(site, environ={"LIKENESS_BUS__HEARTBEAT_S": "0.5", "UNRELATED": "x"})

    assert loaded.settings.bus.heartbeat_s == 0.5
    assert "LIKENESS_BUS__HEARTBEAT_S" in loaded.origins["bus.heartbeat_s"]
    assert loaded.settings.bus.send_hwm == 50 and loaded.origins["bus.send_hwm"] == str(site)


def test_lists_and_tables_come_from_the_environment_as_json():
    loaded = load_settings(
        environ={
            "LIKENESS_BUS__LATCHED": '["show."]',
            "LIKENESS_NODES__MODULES": '{"state": "tests.support.state_node"}',
        }
    )

    assert loaded.settings.bus.latched == ("show.",)
    assert loaded.settings.nodes.modules == {"state": "tests.support.state_node"}
    assert "LIKENESS_NODES__MODULES" in loaded.origins["nodes.modules"]


def test_likeness_config_names_the_site_file_and_an_explicit_path_wins(tmp_path):
    from_variable = _site(tmp_path, "[bus]\nheartbeat_s = 3.0\n", "variable.toml")
    explicit = _site(tmp_path, "[bus]\nheartbeat_s = 4.0\n", "explicit.toml")

    chosen = load_settings(environ={"LIKENESS_CONFIG": str(from_variable)})
    overruled = load_settings(explicit, environ={"LIKENESS_CONFIG": str(from_variable)})

    assert chosen.settings.bus.heartbeat_s == 3.0 and chosen.origins["bus.heartbeat_s"] == str(from_variable)
    assert overruled.settings.bus.heartbeat_s == 4.0 and overruled.origins["bus.heartbeat_s"] == str(explicit)
    assert overruled.files == (DEFAULT_FILE, explicit)


def test_a_tilde_in_a_directory_is_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    site = _site(tmp_path, '[bus]\nkeys_dir = "~/gallery/keys"\n')

    loaded = load_settings(site, environ={"LIKENESS_BUS__AUTHORIZED_DIR": "~/gallery/allowed"})

    assert loaded.settings.bus.keys_dir == tmp_path / "gallery" / "keys"
    assert loaded.settings.bus.authorized_dir == tmp_path / "gallery" / "allowed"


def test_a_sub_section_is_off_by_default_and_each_of_its_keys_has_its_own_origin(tmp_path):
    site = _site(tmp_path, '[bot.generative]\nenabled = true\nbase_url = "http://127.0.0.1:11434/v1"\n')

    assert load_settings(environ={}).settings.bot.generative.enabled is False
    loaded = load_settings(site, environ={"LIKENESS_BOT__GENERATIVE__TIMEOUT_S": "1.5"})

    generative = loaded.settings.bot.generative
    assert generative.enabled and generative.base_url == "http://127.0.0.1:11434/v1" and generative.timeout_s == 1.5
    assert loaded.origins["bot.generative.enabled"] == str(site)
    assert loaded.origins["bot.generative.timeout_s"] == "environment LIKENESS_BOT__GENERATIVE__TIMEOUT_S"
    assert loaded.origins["bot.generative.model"] == DEFAULT
    assert loaded.origins["bot.threshold"] == DEFAULT and "bot.generative" not in loaded.origins


def test_a_sub_section_is_switched_on_from_the_environment():
    loaded = load_settings(
        environ={"LIKENESS_BOT__GENERATIVE__ENABLED": "true", "LIKENESS_BOT__GENERATIVE__BACKEND": "llama_cpp"}
    )

    assert loaded.settings.bot.generative.enabled is True and loaded.settings.bot.generative.backend == "llama_cpp"
    assert loaded.origins["bot.generative.enabled"] == "environment LIKENESS_BOT__GENERATIVE__ENABLED"


# site file text: (dotted key, further words the message must contain)
BAD_SITE_FILES = {
    "unknown key": ("[bus]\ntypo = 1\n", "bus.typo", ["unknown key"]),
    "unknown section": ("[buss]\nheartbeat_s = 1.0\n", "buss", ["unknown key"]),
    "unknown key in a later section": (
        '[log]\nlevel = "info"\ncolour = true\n',
        "log.colour",
        ["unknown key"],
    ),
    "wrong type": ('[bus]\nheartbeat_s = "fast"\n', "bus.heartbeat_s", ["'fast'"]),
    "out of range": ("[bus]\nheartbeat_s = -1\n", "bus.heartbeat_s", ["greater than 0", "-1"]),
    "not a choice": ('[log]\nlevel = "loud"\n', "log.level", ["'loud'"]),
    "a list given as a string": ('[bus]\nlatched = "show."\n', "bus.latched", ["'show.'"]),
    "a bad value inside a table": ("[nodes.modules]\nlights = 3\n", "nodes.modules.lights", ["3"]),
    "a section given as a value": ("bus = 3\n", "bus", ["3"]),
    "unknown key in a sub-section": ("[bot.generative]\ntypo = 1\n", "bot.generative.typo", ["unknown key"]),
    "bad value in a sub-section": ('[bot.generative]\nbackend = "gpt"\n', "bot.generative.backend", ["'gpt'"]),
    "a key in place of its variable's name": (
        '[bot.generative]\napi_key_env = "sk-1234 5678"\n',
        "bot.generative.api_key_env",
        ["pattern"],
    ),
}


@pytest.mark.parametrize(("text", "key", "words"), BAD_SITE_FILES.values(), ids=BAD_SITE_FILES.keys())
def test_a_bad_site_file_is_one_line_naming_the_file_and_the_key(tmp_path, text, key, words):
    site = _site(tmp_path, text)

    message = _error(site, environ={})

    assert message.startswith(f"{site}: {key}: ")
    for word in words:
        assert word in message


def test_a_missing_site_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.toml"
    assert _error(missing, environ={}) == f"{missing}: no such settings file"
    assert _error(environ={"LIKENESS_CONFIG": str(missing)}) == f"{missing}: no such settings file"


def test_a_site_file_that_is_not_toml_is_named_with_the_line(tmp_path):
    site = _site(tmp_path, "[bus]\nheartbeat_s = 1.0\nheartbeat_s =\n")

    message = _error(site, environ={})

    assert message.startswith(f"{site}: not valid TOML")
    assert "line 3" in message


def test_a_directory_given_as_the_site_file_is_named(tmp_path):
    assert _error(tmp_path, environ={}).startswith(f"{tmp_path}: cannot read")


# variables: (the variable the message must name, the dotted key, further words)
BAD_ENVIRONMENTS = {
    "unknown key": ({"LIKENESS_BUS__TYPO": "1"}, "LIKENESS_BUS__TYPO", "bus.typo", ["unknown key"]),
    "unknown section": (
        {"LIKENESS_BUSS__HEARTBEAT_S": "1"},
        "LIKENESS_BUSS__HEARTBEAT_S",
        "buss",
        ["unknown key"],
    ),
    "lower case": ({"likeness_bus__typo": "1"}, "LIKENESS_BUS__TYPO", "bus.typo", ["unknown key"]),
    "wrong type": (
        {"LIKENESS_BUS__HEARTBEAT_S": "fast"},
        "LIKENESS_BUS__HEARTBEAT_S",
        "bus.heartbeat_s",
        ["'fast'"],
    ),
    "a list not in JSON": (
        {"LIKENESS_BUS__LATCHED": "show."},
        "LIKENESS_BUS__LATCHED",
        "bus.latched",
        ["JSON"],
    ),
    "a table not in JSON": (
        {"LIKENESS_NODES__MODULES": "{lights: x}"},
        "LIKENESS_NODES__MODULES",
        "nodes.modules",
        ["JSON"],
    ),
    "unknown key in a sub-section": (
        {"LIKENESS_BOT__GENERATIVE__TYPO": "1"},
        "LIKENESS_BOT__GENERATIVE__TYPO",
        "bot.generative.typo",
        ["unknown key"],
    ),
    "wrong type in a sub-section": (
        {"LIKENESS_BOT__GENERATIVE__ENABLED": "perhaps"},
        "LIKENESS_BOT__GENERATIVE__ENABLED",
        "bot.generative.enabled",
        ["'perhaps'"],
    ),
}


@pytest.mark.parametrize(("variables", "name", "key", "words"), BAD_ENVIRONMENTS.values(), ids=BAD_ENVIRONMENTS.keys())
def test_a_bad_environment_variable_is_one_line_naming_the_variable_and_the_key(variables, name, key, words):
    # a harmless variable next to the bad one: the message must still pick the right one
    message = _error(environ={"LIKENESS_BUS__SEND_HWM": "10", **variables})

    assert name in message and "LIKENESS_BUS__SEND_HWM" not in message
    assert f": {key}: " in message
    for word in words:
        assert word in message


def test_a_variable_error_wins_over_the_site_file_it_overrides(tmp_path):
    site = _site(tmp_path, "[bus]\nheartbeat_s = 2.0\n")

    message = _error(site, environ={"LIKENESS_BUS__HEARTBEAT_S": "0"})

    assert "LIKENESS_BUS__HEARTBEAT_S" in message and "bus.heartbeat_s" in message
    assert str(site) not in message


@pytest.mark.parametrize("name", ["demo.toml", "site-example.toml"])
def test_the_shipped_site_files_load(name):
    loaded = load_settings(DEFAULT_FILE.parent / name, environ={})
    assert {"mic", "asr"} <= set(loaded.settings.nodes.enabled)
