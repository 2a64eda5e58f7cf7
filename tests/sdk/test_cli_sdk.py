"""The CLI parts of SDK support, as subprocesses: allowed browser origins per project, `events
show` for a missing event, and `send` of an envelope with an attachment and dropped items."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.sdk.server import eventpipe


def test_project_origins(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = json.loads(eventpipe(home, "projects", "add", "5", "web", "--json").stdout)
    assert first["allowed_origins"] == ["*"]
    set_ = json.loads(eventpipe(home, "projects", "add", "5", "web", "--origin", "https://a.example", "--origin",
                                "*.example.org", "--json").stdout)
    assert set_["allowed_origins"] == ["https://a.example", "*.example.org"] and set_["ingest_key"] == first["ingest_key"]
    text = eventpipe(home, "projects", "add", "5", "web", "--no-origins").stdout
    assert "browser origins: none" in text


def test_send_envelope_with_attachment_then_show(tmp_path: Path) -> None:
    home = tmp_path / "home"
    eventpipe(home, "projects", "add", "6", "mobile")
    eid = uuid.uuid4().hex
    blob = bytes(range(256)) * 8
    env = tmp_path / "crash.envelope"
    env.write_bytes(
        b'{"event_id":"%s","dsn":"https://k@h/6"}\n{"type":"event"}\n{"message":"crash"}\n' % eid.encode()
        + b'{"type":"attachment","length":%d,"filename":"log.txt"}\n' % len(blob) + blob
        + b'\n{"type":"session"}\n{"sid":"s","status":"ok"}\n'
    )
    sent = json.loads(eventpipe(home, "send", "--json", str(env)).stdout)
    assert sent["accepted"] == 1 and sent["files"][0]["dropped_items"] == {"session": 1}
    assert len(sent["files"][0]["attachments"]) == 1
    shown = json.loads(eventpipe(home, "events", "show", "6", eid, "--json").stdout)
    assert shown["event"]["message"] == "crash" and shown["attachments"][0]["size"] == len(blob)
    missing = eventpipe(home, "events", "show", "6", uuid.uuid4().hex, check=False)
    assert missing.returncode == 1 and "no stored event" in missing.stderr
    bad = eventpipe(home, "events", "show", "6", "not-an-id", check=False)
    assert bad.returncode == 2 and "32 hex digits" in bad.stderr
