"""``--help`` of the command and of every subcommand: descriptions, defaults, usage on errors."""

from __future__ import annotations

import pytest

from metarobust.cli import main

COMMANDS = ("train", "evaluate", "attack", "robustness", "plot", "config")


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def option_help(text: str, option: str) -> str:
    """The help of ``option`` (its line and the lines wrapped under it), on one line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"{option} "))
    entry = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("      ") or line.lstrip().startswith("-"):
            break
        entry.append(line)
    return " ".join(" ".join(entry).split())


def test_the_top_level_help_names_every_command_and_algorithm(capsys):
    text = help_text(capsys)
    assert "``" not in text  # no reStructuredText markup in a terminal
    listed = " ".join(text.split())
    for command in COMMANDS:
        assert f" {command} " in listed
    for algorithm in ("PPO", "TRPO", "MAML, RARL, robust MAML or UED"):
        assert algorithm in listed


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_description_under_its_usage(capsys, command):
    text = help_text(capsys, command)
    usage, description, *_ = text.split("\n\n")
    assert usage.startswith(f"usage: metarobust {command}")
    assert len(description.split()) >= 5, description
    assert "``" not in text
    for option in ("-h, --help",):
        assert option in text


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        ("attack", "--steps", "200000"),
        ("attack", "--episodes", "20"),
        ("attack", "--seed", "0"),
        ("evaluate", "--episodes", "10"),
        ("evaluate", "--seed", "12345"),
        ("evaluate", "--tasks", "40"),
        ("evaluate", "--steps", "3"),
        ("evaluate", "--random-levels", "200"),
        ("robustness", "--episodes", "5"),
        ("robustness", "--seed", "12345"),
    ],
)
def test_options_show_their_defaults(capsys, command, option, default):
    assert option_help(help_text(capsys, command), option).endswith(f"(default: {default})")


@pytest.mark.parametrize(
    ("command", "option"),
    [("config", "--set"), ("config", "--config"), ("train", "--set"), ("evaluate", "--out"),
     ("robustness", "--out"), ("attack", "--out"), ("plot", "--metric")],
)  # fmt: skip
def test_every_option_says_what_it_does(capsys, command, option):
    entry = option_help(help_text(capsys, command), option)
    assert len(entry.split()) >= 5, entry


def test_a_mistyped_flag_shows_its_commands_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--confg", "configs/maml_config.yaml"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: metarobust train")
    assert err.strip().endswith("unrecognized arguments: --confg configs/maml_config.yaml")
    with pytest.raises(SystemExit):
        main(["evaluate", "logs/x", "--epsiodes", "3"])
    assert capsys.readouterr().err.startswith("usage: metarobust evaluate")


def test_the_envs_help_states_the_evaluation_cap(capsys):
    # the CLI spells the number out so that --help need not import the sampler stack
    from metarobust.sampling.sampler_factory import EVALUATION_ENVS

    entry = option_help(help_text(capsys, "evaluate"), "--envs")
    assert f"(default: {EVALUATION_ENVS}, or fewer" in entry
