import pytest

from eventpipe.config import ConfigError, load_settings


def test_defaults_are_embedded(tmp_path):
    s = load_settings()
    assert s.embedded
    assert s.resolved_database_url().startswith("sqlite:///")
    assert s.resolved_kv_url().startswith(("file://", "sqlite://"))


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("EVENTPIPE_PREFETCH", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "EVENTPIPE_PREFETCH" in str(info.value)
    assert "integer" in str(info.value)


def test_broker_url_must_be_amqp(monkeypatch):
    monkeypatch.setenv("EVENTPIPE_BROKER_URL", "http://user:secret@host")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "EVENTPIPE_BROKER_URL" in str(info.value)


def test_csv_lists_and_toml_file(monkeypatch, tmp_path):
    monkeypatch.setenv("EVENTPIPE_BROKER_URLS", "amqp://a:5672, amqp://b:5673")
    (tmp_path / "ep.toml").write_text('queue_prefix = "t1."\n[pools.events]\nqueues = ["events*"]\nprocesses = 2\nthreads = 4\n')
    monkeypatch.setenv("EVENTPIPE_CONFIG", str(tmp_path / "ep.toml"))
    s = load_settings()
    assert s.broker_urls == ["amqp://a:5672", "amqp://b:5673"]
    assert s.queue_prefix == "t1."
    assert s.pools["events"].processes == 2
    assert not s.embedded


def test_env_beats_toml_and_bad_toml_is_named(monkeypatch, tmp_path):
    (tmp_path / "eventpipe.toml").write_text('queue_prefix = "fromfile."\n')
    monkeypatch.setenv("EVENTPIPE_QUEUE_PREFIX", "fromenv.")
    assert load_settings().queue_prefix == "fromenv."
    (tmp_path / "eventpipe.toml").write_text("queue_prefix = \n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "eventpipe.toml" in str(info.value)


def test_unknown_toml_key_is_rejected(monkeypatch, tmp_path):
    (tmp_path / "eventpipe.toml").write_text('queue_prefx = "typo."\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "queue_prefx" in str(info.value)


def test_errors_never_show_credentials(monkeypatch):
    monkeypatch.setenv("EVENTPIPE_BROKER_URLS", "amqp://u:hunter2@a:5672,http://u:hunter2@b")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)
    assert "EVENTPIPE_BROKER_URLS" in str(info.value)


def test_messages_are_json_never_pickle():
    import dramatiq

    from eventpipe.runtime import OrjsonEncoder  # importing the runtime sets the encoder

    assert type(dramatiq.get_encoder()) is OrjsonEncoder
    assert dramatiq.get_encoder().decode(dramatiq.get_encoder().encode({"a": [1, "x"]})) == {"a": [1, "x"]}
    from dramatiq.errors import DecodeError
    from dramatiq.message import Message

    with pytest.raises(DecodeError):
        Message.decode(b"\x80\x04\x95pickled")
