"""Every `dbroll ...` command written in a buildspec exists with those options: each is
parsed by the installed CLI with --help appended (an unknown command or option fails)."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import cli
from tests.conftest import REPO

BUILDSPECS = [REPO / "buildspec.yml", *sorted((REPO / "infra" / "buildspecs").glob("*.yml"))]


def commands(path) -> list[str]:
    spec = yaml.safe_load(path.read_text())
    out = []
    for phase in (spec.get("phases") or {}).values():
        for line in phase.get("commands", []):
            out.append(" ".join(line.split()))
    return out


def dbroll_invocations(line: str) -> list[list[str]]:
    """The argument lists of each `dbroll` call in a shell line ($(...), pipes included)."""
    calls = []
    for m in re.finditer(r"(?:^|[\s(;|&])dbroll\s", line):
        rest = line[m.end() :]
        depth, end = 0, len(rest)
        for i, c in enumerate(rest):
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    end = i
                    break
                depth -= 1
            elif c in "|;&>" and depth == 0:
                end = i
                break
        calls.append(shlex.split(rest[:end]))
    return calls


ALL = [
    (f"{p.relative_to(REPO)}: dbroll {' '.join(args)}", args)
    for p in BUILDSPECS
    for line in commands(p)
    for args in dbroll_invocations(line)
]


def test_every_buildspec_calls_dbroll():
    assert {p.name for p in BUILDSPECS} >= {
        "buildspec.yml",
        "deploy.yml",
        "rollback-plan.yml",
        "rollback-execute.yml",
    }
    used = {args[0] for _, args in ALL}
    assert used >= {"manifest", "lint", "verify", "deploy", "plan", "rollback"}


@pytest.mark.parametrize(("where", "args"), ALL, ids=[w for w, _ in ALL])
def test_command_parses(where, args):
    r = CliRunner().invoke(cli, [*args, "--help"])
    assert r.exit_code == 0 and "Usage:" in r.output, f"{where}\n{r.output}"


def test_the_check_catches_an_unknown_option():
    r = CliRunner().invoke(cli, ["rollback", "--cluster", "c", "--no-such-flag", "--help"])
    assert r.exit_code == 2
    assert dbroll_invocations('X=$(dbroll manifest build --out "b c") && dbroll lint | tee') == [
        ["manifest", "build", "--out", "b c"],
        ["lint"],
    ]


# ------------------------------------------------------------------ secondary input artifacts


def _pipeline_builds() -> list[dict]:
    """Each CodeBuild action of the template's pipelines: its buildspec, its input artifacts,
    its primary source (the only input, or PrimarySource) and its output artifacts."""
    from tests.unit.test_infra import load

    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    out = []
    for res in t["Resources"].values():
        if res["Type"] != "AWS::CodePipeline::Pipeline":
            continue
        for stage in res["Properties"]["Stages"]:
            for action in stage["Actions"]:
                if action["ActionTypeId"]["Provider"] != "CodeBuild":
                    continue
                project = action["Configuration"]["ProjectName"]["Ref"]
                inputs = [a["Name"] for a in action.get("InputArtifacts", [])]
                out.append(
                    {
                        "buildspec": REPO
                        / t["Resources"][project]["Properties"]["Source"]["BuildSpec"],
                        "inputs": inputs,
                        "primary": action["Configuration"].get("PrimarySource", inputs[0]),
                        "outputs": [a["Name"] for a in action.get("OutputArtifacts", [])],
                    }
                )
    return out


def _secondary_reads(text: str, artifact: str, files: list[str]) -> tuple[list[str], list[str]]:
    """(files read through $CODEBUILD_SRC_DIR_<artifact>/, files named without it) in `text`."""
    prefixes = (f"$CODEBUILD_SRC_DIR_{artifact}/", f"${{CODEBUILD_SRC_DIR_{artifact}}}/")
    good, bad = [], []
    for f in files:
        for m in re.finditer(re.escape(f), text):
            (good if text[: m.start()].endswith(prefixes) else bad).append(f)
    return good, bad


def test_files_of_a_secondary_input_artifact_are_read_from_its_directory():
    """With several input artifacts, CodeBuild runs the buildspec in the primary source's
    directory and unzips each other one in $CODEBUILD_SRC_DIR_<artifact name>: a file another
    action put in a secondary artifact (its buildspec's `artifacts: files`) is read there."""
    builds = _pipeline_builds()
    produced: dict[str, list[str]] = {}
    for b in builds:
        files = (yaml.safe_load(b["buildspec"].read_text()).get("artifacts") or {}).get("files", [])
        for name in b["outputs"]:
            produced[name] = files
    read, wrong = [], []
    for b in builds:
        text = "\n".join(commands(b["buildspec"]))
        for artifact in b["inputs"]:
            if artifact == b["primary"]:
                continue
            good, bad = _secondary_reads(text, artifact, produced[artifact])
            read += [f"{b['buildspec'].name}: {artifact}/{f}" for f in good]
            wrong += [f"{b['buildspec'].name}: {artifact}/{f}" for f in bad]
        # and each artifact directory a buildspec names is one of its action's secondary inputs
        for artifact in re.findall(r"CODEBUILD_SRC_DIR_(\w+)", text):
            assert artifact in b["inputs"] and artifact != b["primary"], (b["buildspec"], artifact)
    assert wrong == []
    assert read == ["deploy.yml: Image/imageDetail.json"]


def test_the_check_catches_a_file_read_from_the_working_directory():
    text = (
        'python3 -c \'json.load(open("imageDetail.json"))\' ; cat "$CODEBUILD_SRC_DIR_Image/x.json"'
    )
    assert _secondary_reads(text, "Image", ["imageDetail.json", "x.json"]) == (
        ["x.json"],
        ["imageDetail.json"],
    )
    assert _secondary_reads("${CODEBUILD_SRC_DIR_Image}/y.json", "Image", ["y.json"]) == (
        ["y.json"],
        [],
    )
