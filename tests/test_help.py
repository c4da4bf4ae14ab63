"""`gestsync COMMAND --help`: a description, examples, and the facts a newcomer looks for."""

import argparse

import pytest

from gestsync import prepare, train
from gestsync.cli import build_parser, main


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _help(capsys, *argv) -> str:
    assert main([*argv, "--help"]) == 0
    return capsys.readouterr().out


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_has_a_description_and_examples(capsys, command):
    text = _help(capsys, command)
    usage, description = text.split("\n\n")[:2]
    assert usage.startswith(f"usage: gestsync {command}")
    assert len(description.split()) >= 15, description  # a paragraph, not a title
    assert not description.startswith(("positional arguments", "options"))
    examples = [l.strip() for l in text.split("\nexamples:\n")[1].splitlines() if l.strip()]
    assert examples and all(f"gestsync {command}" in l for l in examples), examples


def test_top_level_help_lists_every_command_with_examples(capsys):
    text = _help(capsys)
    for command in _commands():
        assert f"    {command} " in text
    assert "gestsync COMMAND --help" in text and "\nexamples:\n  gestsync " in text


def test_sync_help_states_the_sign_convention(capsys):
    text = _flat(_help(capsys, "sync"))
    assert "+ means the sound comes later than the picture, - earlier" in text


def test_speaker_help_explains_the_summary_line(capsys):
    text = _flat(_help(capsys, "speaker"))
    assert "START-END s: WHO (CONFIDENCE)" in text and "#1 (0.89)" in text
    assert "no speech, off-screen voice (only with --allow-offscreen) or no person" in text
    assert "alone in view" in text and "#1 67%, #0 20%, nobody 13%" in text


def test_eval_help_points_to_the_docs(capsys):
    text = _help(capsys, "eval")
    assert "docs/accuracy.md" in text and "gestsync.evaluate" not in text


def test_train_help_says_when_data_is_needed(capsys):
    assert "required unless --resume" in _flat(_help(capsys, "train"))


def test_metavars_are_the_shared_names():
    parsers = [*_commands().values(), prepare.build_parser(), train.build_parser()]
    metavars = {a.metavar for p in parsers for a in p._actions if isinstance(a.metavar, str)}
    assert not metavars & {"K", "S", "FILE", "DEVICE"}, metavars
    assert {"VIDEO", "DIR", "N", "PATH", "SECONDS"} <= metavars
