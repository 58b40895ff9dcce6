"""benchmarks/run_all.py: every topic `make bench` walks has a module to run or is kept as made by hand
(three topics had neither: ModuleNotFoundError, exit 1), and each run it makes is the published one (the
Command line of its committed results file; long_run and banet_latency ran with their defaults)."""

from __future__ import annotations

import importlib.util
import re
import shlex

from benchmarks import real_clips, run_all


def _published_argv(topic: str) -> tuple[str, list[str]]:
    """The module and arguments on the Command line of results/<topic>.md."""
    text = (run_all.RESULTS / f"{topic}.md").read_text()
    command = re.search(r"^(?:Command|- command): `([^`]*)`", text, re.MULTILINE | re.IGNORECASE)
    assert command, f"{topic}: no Command line"
    words = shlex.split(command.group(1).replace(f"{run_all.ROOT}/", ""))
    assert words[:2] == [".venv/bin/python", "-m"], topic
    return words[2].removeprefix("benchmarks."), words[3:]


def test_each_topic_has_a_module_or_is_manual() -> None:
    missing = []
    for topic in run_all.TOPICS:
        if topic in run_all.MANUAL:
            continue
        module, _ = run_all.RUNS.get(topic, (topic, []))
        if importlib.util.find_spec(f"benchmarks.{module}") is None:
            missing.append(topic)
    assert missing == []


def test_each_run_is_the_published_command() -> None:
    parser = real_clips.build_parser()
    assert {"long_run", "banet_latency", "imatching_accuracy"} <= set(run_all.RUNS)
    for topic, (module, args) in run_all.RUNS.items():
        published_module, published = _published_argv(topic)
        assert module == published_module, topic
        args = [a.replace(f"{run_all.ROOT}/", "") for a in args]
        if module == "real_clips":  # the same run by real_clips' own rule (defaults spelled out or not)
            key = real_clips.run_key(parser.parse_args(args))
            assert key == real_clips.run_key(parser.parse_args(published)), topic
        else:
            assert args == published, topic
