"""The client commands in-process (typer's CliRunner): generate, status, wait, download,
cancel, list, models and batch, against a live videogate and the fake upstreams."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from client_support import (
    SHORT,
    SHORT_FLAGS,
    Videogate,
    clean_env_for_runner,
    fake_env,
    png,
    relay,
    shared_ark,
    shared_relay,
    vg,
)
from conftest import LiveServer, make_live_key
from fakes import FakeArk, FakeRelay, sample_mp4
from videogate.cli.main import app
from videogate.client import Client

__all__ = ["relay", "shared_ark", "shared_relay", "vg"]  # fixtures
# Every command against a live server and the fake upstreams: the slow tier (make test).
pytestmark = pytest.mark.slow

runner = CliRunner()


@pytest.fixture
def ark(shared_ark: FakeArk) -> FakeArk:
    shared_ark.reset()
    return shared_ark


def cli(env: dict[str, str], *args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args), env=clean_env_for_runner(env))
    assert result.exit_code == code, (
        f"exit {result.exit_code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        f"\n{result.exception!r}"
    )
    return result


def cli_json(env: dict[str, str], *args: str, code: int = 0) -> Any:
    return json.loads(cli(env, *args, "--json", code=code).stdout)


def relay_env(fake: FakeRelay | FakeArk) -> dict[str, str]:
    return {**fake_env(fake), "VIDEOGATE_POLL_INTERVAL": "0.05"}


# ---- videogate ------------------------------------------------------------------------


def test_generate_then_every_task_command(vg: Videogate, tmp_path: Path) -> None:
    env = vg.env()
    image = png(tmp_path / "field.png")
    out = tmp_path / "clip.mp4"
    made = cli_json(
        env, "generate", "the field in image 1", *SHORT_FLAGS, "--image", str(image), "-o", str(out)
    )
    assert made["status"] == "succeeded" and made["file"] == str(out)
    assert made["bytes"] == out.stat().st_size and made["seconds"] == pytest.approx(4, abs=0.1)
    task_id = made["id"]

    human = cli(env, "generate", "a fox", *SHORT_FLAGS, "-o", str(tmp_path / "fox.mp4"))
    assert "saved" in human.stdout and "4.00 s" in human.stdout

    status = cli_json(env, "status", task_id)
    assert (status["id"], status["status"], status["size"]) == (task_id, "succeeded", "864x496")
    assert task_id in cli(env, "status", task_id).stdout

    waited = cli_json(env, "wait", task_id)
    assert waited["status"] == "succeeded"
    again = tmp_path / "again.mp4"
    waited = cli_json(env, "wait", task_id, "-o", str(again))
    assert again.read_bytes() == out.read_bytes() and waited["file"] == str(again)

    third = tmp_path / "third.mp4"
    assert "saved" in cli(env, "download", task_id, "-o", str(third)).stdout
    assert third.read_bytes() == out.read_bytes()

    listed = cli_json(env, "list", "--limit", "5")
    assert task_id in [t["id"] for t in listed["data"]]
    assert task_id in cli(env, "list").stdout

    models = cli_json(env, "models")
    assert "sandbox" in [m["id"] for m in models]
    assert "sandbox" in cli(env, "models").stdout

    # A finished task is not cancelled (nor its media deleted).
    assert cli_json(env, "cancel", task_id)["status"] == "succeeded"
    with Client(vg.base_url, vg.key) as client:
        long = client.create("slow", model="sandbox", duration=15, resolution="480p")
    unfinished = cli_json(env, "download", long.id, code=1)
    assert f"videogate wait {long.id}" in unfinished["error"]["message"]
    assert cli_json(env, "cancel", long.id)["status"] == "cancelled"
    failed = cli_json(env, "wait", long.id, code=1)
    assert failed["error"]["type"] == "TaskFailed" and failed["error"]["code"] == "cancelled"
    assert failed["error"]["task_id"] == long.id


def test_errors_are_messages_and_exit_codes(vg: Videogate, tmp_path: Path) -> None:
    no_key = cli({"VIDEOGATE_BASE_URL": vg.base_url}, "list", code=2)
    assert "VIDEOGATE_API_KEY" in no_key.stderr
    wrong = cli({**vg.env(), "VIDEOGATE_API_KEY": "vg-nope"}, "list", "--json", code=1)
    assert json.loads(wrong.stdout)["error"]["status"] == 401
    bad = cli(vg.env(), "generate", "x", "-m", "sandbox", "--duration", "99", code=1)
    assert "duration" in bad.stderr
    missing = cli(vg.env(), "generate", "x", "--image", str(tmp_path / "nope.png"), code=2)
    assert "not found" in missing.stderr
    unknown = cli(vg.env(), "status", "video_nope", code=1)
    assert "404" in unknown.stderr


def test_timeout_exits_3_with_the_id(relay: FakeRelay) -> None:
    relay.auto_advance = False
    env = relay_env(relay)
    result = cli(env, "generate", "a fox", "--timeout", "0.2", "--json", code=3)
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "TaskTimeout" and error["task_id"] in relay.tasks


# ---- relay and Ark --------------------------------------------------------------------


def test_commands_against_the_relay(relay: FakeRelay, tmp_path: Path) -> None:
    env = relay_env(relay)
    out = tmp_path / "r.mp4"
    made = cli_json(env, "generate", "a cat", "-m", "relay-model", "-o", str(out))
    assert out.read_bytes() == sample_mp4(True)
    assert relay.requests_to("create")[0].json["model"] == "relay-model"
    assert cli_json(env, "status", made["id"])["status"] == "succeeded"
    assert [t["id"] for t in cli_json(env, "list")["data"]] == [made["id"]]
    assert cli_json(env, "models", code=1)["error"]["status"] == 404  # the fake has none
    relay.auto_advance = False
    queued = cli_json(env, "generate", "slow", "--timeout", "0", code=3)["error"]["task_id"]
    assert cli_json(env, "cancel", queued)["status"] == "deleted"


def test_commands_against_ark_with_flags(ark: FakeArk, tmp_path: Path) -> None:
    flags = ["--api", "ark", "--base-url", ark.base_url, "--api-key", ark.api_key]
    image = png(tmp_path / "a.png")
    made = cli_json(
        {},
        "generate",
        "image 1 waves",
        "-m",
        "doubao-seedance-2-0-fast-260128",
        "--first-frame",
        str(image),
        "--no-audio",
        "--ratio",
        "adaptive",
        "--seed",
        "7",
        "-o",
        str(tmp_path / "a.mp4"),
        "--poll-interval",
        "0.05",
        *flags,
    )
    body = ark.requests_to("create")[0].json
    assert body["content"][1]["role"] == "first_frame"
    assert body["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert (body["ratio"], body["seed"], body["generate_audio"]) == ("adaptive", 7, False)
    assert made["tokens"] > 0
    assert cli_json({}, "status", made["id"], *flags)["raw_status"] == "succeeded"
    assert cli_json({}, "list", *flags)["data"][0]["id"] == made["id"]
    no_models = cli({}, "models", *flags, code=1)
    assert "no model list" in no_models.stderr
    clip = tmp_path / "b.mp4"
    clip.write_bytes(sample_mp4(False))
    local_video = cli({}, "generate", "x", "--video", str(clip), *flags, code=2)
    assert "only as URLs" in local_video.stderr
    assert len(ark.requests_to("create")) == 1


# ---- batch ----------------------------------------------------------------------------


def write_jobs(path: Path, jobs: list[dict[str, Any] | str]) -> Path:
    lines = [j if isinstance(j, str) else json.dumps(j) for j in jobs]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_batch_against_videogate(vg: Videogate, tmp_path: Path) -> None:
    short = {"model": "sandbox", "duration": 4, "resolution": "480p", "generate_audio": False}
    (tmp_path / "refs").mkdir()
    png(tmp_path / "refs" / "a.png")
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"prompt": "image 1 at night", "image": "refs/a.png", "out": "night.mp4", **short},
            "",
            {"prompt": "a fox", **short},
            {"prompt": "too long", "model": "sandbox", "duration": 99},
        ],
    )
    out = tmp_path / "out"
    summary = cli_json(vg.env(), "batch", str(jobs), "--out", str(out), "-c", "2", code=1)
    assert summary == {
        "total": 3,
        "succeeded": 2,
        "failed": 1,
        "unfinished": 0,
        "results": str(out / "results.jsonl"),
    }
    rows = read_results(out)
    assert [(r["line"], r["status"], r["file"]) for r in rows] == [
        (1, "succeeded", "night.mp4"),
        (3, "succeeded", "0003.mp4"),
        (4, "rejected", None),
    ]
    assert rows[0]["seconds"] == pytest.approx(4, abs=0.1) and rows[0]["cost"] == "0.00"
    assert rows[2]["error"]["code"] == "invalid_request" and rows[2]["id"] is None
    assert (out / "night.mp4").stat().st_size == rows[0]["bytes"]

    # Again: nothing new is created, the manifest is the same.
    with Client(vg.base_url, vg.key) as client:
        before = [t.id for t in client.list(limit=100).tasks]
        cli(vg.env(), "batch", str(jobs), "--out", str(out), code=1)
        assert [t.id for t in client.list(limit=100).tasks] == before
    assert read_results(out) == rows


def test_batch_retry_failed_and_changed_jobs(relay: FakeRelay, tmp_path: Path) -> None:
    env = relay_env(relay)
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"prompt": "one"}, {"prompt": "two"}])
    out = tmp_path / "out"
    relay.fail_next_tasks(1, "content_policy_violation", "blocked")
    result = cli(env, "batch", str(jobs), "--out", str(out), "-c", "1", code=1)
    assert "1 failed" in result.stdout
    rows = read_results(out)
    assert rows[0]["status"] == "failed" and rows[0]["error"]["code"] == "content_policy_violation"
    assert rows[1]["status"] == "succeeded"
    assert len(relay.tasks) == 2

    cli(env, "batch", str(jobs), "--out", str(out), code=1)
    assert len(relay.tasks) == 2  # failed lines stay failed
    summary = cli_json(env, "batch", str(jobs), "--out", str(out), "--retry-failed")
    assert summary["succeeded"] == 2 and len(relay.tasks) == 3
    assert [r["status"] for r in read_results(out)] == ["succeeded", "succeeded"]
    (out / "0002.mp4").unlink()  # a clip lost after the fact: downloaded again, no new task
    assert cli_json(env, "batch", str(jobs), "--out", str(out))["succeeded"] == 2
    assert (out / "0002.mp4").read_bytes() == sample_mp4(True) and len(relay.tasks) == 3

    write_jobs(jobs, [{"prompt": "one, edited"}, {"prompt": "two"}])
    changed = cli(env, "batch", str(jobs), "--out", str(out), code=2)
    assert "line 1" in changed.stderr and "changed" in changed.stderr
    other_api = cli({**env, "VIDEOGATE_API": "ark"}, "batch", str(jobs), "--out", str(out), code=2)
    assert "belongs to a batch against relay" in other_api.stderr


def test_batch_rejects_bad_jobs_before_sending(relay: FakeRelay, tmp_path: Path) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"prompt": "ok", "out": "a.mp4"},
            {"prompt": "dup", "out": "a.mp4"},
            {"promt": "typo"},
            {"prompt": "x", "duration": "5"},
            {"prompt": "y", "generate_audio": 1},
            "not json",
        ],
    )
    result = cli(relay_env(relay), "batch", str(jobs), "--out", str(tmp_path / "o"), code=2)
    for expected in ("line 2", "line 3: unknown key(s) promt", "line 4", "line 5", "line 6"):
        assert expected in result.stderr
    assert relay.requests == []


def test_batch_resends_an_unanswered_create_with_its_key(vg: Videogate, tmp_path: Path) -> None:
    """A create that reached videogate but whose answer was lost (the journal has the key
    and body, no id) is sent again with the same key: the same task comes back."""
    key = make_live_key(LiveServer(vg.base_url, vg.settings))
    env = {**vg.env(), "VIDEOGATE_API_KEY": key}
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"prompt": "a fox", **SHORT}])
    out = tmp_path / "out"
    out.mkdir()
    with Client(vg.base_url, key) as client:
        prepared = client.prepare("a fox", **SHORT)
        lost = client.submit(prepared, idempotency_key="vg-lost-answer")
        journal = [
            {"event": "batch", "version": 1, "api": "videogate", "base_url": client.base_url},
            {
                "event": "submit",
                "line": 1,
                "key": "vg-lost-answer",
                "at": time.time(),
                "request": {k: v for k, v in prepared.body.items() if k != "content"},
                "body": prepared.body,
            },
            # A record torn by the crash is ignored.
            '{"event": "created", "line": 1, "id": "video_',
        ]
        (out / "journal.jsonl").write_text(
            "\n".join(j if isinstance(j, str) else json.dumps(j) for j in journal)
        )  # the torn last record has no newline either
        summary = cli_json(env, "batch", str(jobs), "--out", str(out))
        assert summary["succeeded"] == 1
        assert read_results(out)[0]["id"] == lost.id
        assert [t.id for t in client.list().tasks] == [lost.id]
    events = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines()[3:]]
    assert [e["event"] for e in events] == ["created", "done"]
