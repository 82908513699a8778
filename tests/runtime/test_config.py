"""Pipeline files: every malformed case is one clear issue naming file and line."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from va_actors.runtime.config import (
    ConfigError,
    ConfigIssue,
    PipelineConfig,
    SupervisorDefaults,
    load_pipeline,
    scan_lines,
)
from va_actors.runtime.plugins import (
    Category,
    NotAPlugin,
    PluginLoadError,
    PluginNotFound,
    category,
    outputs,
    resolve,
)

MODULE = "cfg_plugins"
PLUGINS = '''
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from va_actors.core.llm import LLM, LLMResponseDelta, LLMResponseFinal
from va_actors.core.node import Node
from va_actors.core.processors import VideoProcessor
from va_actors.core.stt import STT
from va_actors.core.tts import TTS


class Mic(Node):
    """A source node."""


class Edge(Node):
    """A transport: captures the user, plays agent audio."""


class MySTT(STT):
    def __init__(self, model: str = "tiny") -> None:
        super().__init__()
        self.model = model

    async def process_audio(self, pcm_data: Any, participant: Any = None) -> None:
        return None


class NeedsKey(STT):
    def __init__(self, api_key: str) -> None:
        super().__init__()

    async def process_audio(self, pcm_data: Any, participant: Any = None) -> None:
        return None


class HalfSTT(STT):
    """Forgets process_audio."""


class EchoLLM(LLM):
    async def simple_response(self, text: str, processors: Any = None,
                              participant: Any = None
                              ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        yield LLMResponseFinal(text=text)


class MyTTS(TTS):
    def __init__(self, voice: str = "a") -> None:
        super().__init__()

    async def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> bytes:
        return b""

    async def stop_audio(self) -> None:
        return None


class Faces(VideoProcessor):
    async def process_video(self, track: Any, participant_id: Any,
                            shared_forwarder: Any = None) -> None:
        return None

    async def stop_processing(self) -> None:
        return None

    async def close(self) -> None:
        return None


class NotAPluginClass:
    pass


def factory() -> None:
    return None
'''

HEAD = f"""
[[actor]]
name = "mic"
plugin = "{MODULE}:Mic"
"""


@pytest.fixture(autouse=True)
def _isolated_imports() -> Iterator[None]:
    """Undo what resolving plugins does to sys.path and sys.modules."""
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith((MODULE, "broken_")):
            del sys.modules[name]


def write(tmp_path: Path, toml: str, name: str = "pipeline.toml") -> Path:
    (tmp_path / f"{MODULE}.py").write_text(PLUGINS)
    path = tmp_path / name
    path.write_text(textwrap.dedent(toml).lstrip("\n"))
    return path


def issues_of(path: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    return list(caught.value.issues)


def one_issue(path: Path) -> ConfigIssue:
    found = issues_of(path)
    assert len(found) == 1, "\n".join(str(i) for i in found)
    assert found[0].file == str(path)
    return found[0]


# -- a valid pipeline ----------------------------------------------------------


def test_valid_pipeline_loads_with_defaults_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
        [pipeline]
        name = "voice"
        on_give_up = "degrade"
        run_dir = "run"

        [supervisor]
        restart = "always"
        hang_timeout_s = 2.5

        [[actor]]
        name = "mic"
        plugin = "{MODULE}:Mic"

        [[actor]]
        name = "stt"
        plugin = "{MODULE}:MySTT"
        inputs = ["mic.audio"]
        replicas = 2
        max_inflight = 3
        restart = "never"
        memory_limit_mb = 512
        env = {{ HF_HOME = "/tmp/hf" }}
        [actor.params]
        model = "base"

        [[actor]]
        name = "llm"
        plugin = "{MODULE}:EchoLLM"
        inputs = ["stt.transcript"]

        [[actor]]
        name = "tts"
        plugin = "{MODULE}:MyTTS"
        inputs = ["llm.text"]

        [[service]]
        name = "llama"
        command = ["llama-server", "--port", "8080"]
        health_url = "http://127.0.0.1:8080/health"
        startup_timeout_s = 120
    """)
    config = load_pipeline(path)
    assert isinstance(config, PipelineConfig)
    assert (config.name, config.on_give_up) == ("voice", "degrade")
    assert config.path == path.resolve()
    assert config.run_dir == str((tmp_path / "run").resolve())
    assert config.supervisor == SupervisorDefaults(restart="always", hang_timeout_s=2.5)
    mic, stt, llm, tts = config.actors
    assert mic.category is Category.NODE and mic.inputs == ()
    assert mic.outputs == ("audio", "events")  # what consumers read from a node, plus events
    assert (stt.category, stt.replicas, stt.max_inflight) == (Category.STT, 2, 3)
    assert stt.supervisor.restart == "never" and stt.supervisor.memory_limit_mb == 512
    assert stt.supervisor.hang_timeout_s == 2.5  # inherited from [supervisor]
    assert stt.params == {"model": "base"} and stt.env == {"HF_HOME": "/tmp/hf"}
    assert stt.instances == ["stt-0", "stt-1"] and mic.instances == ["mic"]
    assert stt.plugin_class.__name__ == "MySTT" and stt.line == 14
    assert llm.category is Category.LLM and tts.outputs == ("audio", "events")
    assert config.topological_order() == ["mic", "stt", "llm", "tts"]
    assert [a.name for a in config.consumers("stt.transcript")] == ["llm"]
    assert config.actor("tts") is tts
    (service,) = config.services
    assert service.command == ("llama-server", "--port", "8080")
    assert service.startup_timeout_s == 120.0


def test_defaults_name_the_pipeline_after_the_file(tmp_path: Path) -> None:
    config = load_pipeline(write(tmp_path, HEAD, name="my voice.toml"))
    assert config.name == "my-voice"
    assert config.on_give_up == "stop" and config.run_dir is None
    assert config.actors[0].supervisor == SupervisorDefaults()


def test_a_loop_through_a_transport_node_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
        [[actor]]
        name = "stt"
        plugin = "{MODULE}:MySTT"
        inputs = ["edge.audio"]
        [[actor]]
        name = "llm"
        plugin = "{MODULE}:EchoLLM"
        inputs = ["stt.transcript"]
        [[actor]]
        name = "tts"
        plugin = "{MODULE}:MyTTS"
        inputs = ["llm.text"]
        [[actor]]
        name = "edge"
        plugin = "{MODULE}:Edge"
        inputs = ["tts.audio"]
    """)
    config = load_pipeline(path)
    assert config.layers() == [["edge"], ["stt"], ["llm"], ["tts"]]


# -- syntax and file errors ------------------------------------------------------


def test_toml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + '\n[[actor]]\nname = "stt\nplugin = "x"\n')
    issue = one_issue(path)
    assert issue.line == 6
    assert "invalid TOML" in issue.message and "nothing else was checked" in str(issue.hint)


def test_toml_error_at_end_of_file_points_at_the_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + 'notes = """never closed\n')
    issue = one_issue(path)
    assert issue.line == 4 and "end of the file" in issue.message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    issue = one_issue(path)
    assert issue.line is None and issue.message == "pipeline file not found"
    assert str(issue).startswith(f"{path}: pipeline file not found")


def test_a_directory_is_not_a_pipeline(tmp_path: Path) -> None:
    issue = one_issue(tmp_path)
    assert "is a directory" in issue.message


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "a"\n# caf\xe9\n')
    issue = one_issue(path)
    assert issue.line == 2 and "UTF-8" in issue.message


# -- unknown keys --------------------------------------------------------------------


def test_unknown_top_level_table_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + '\n[[actors]]\nname = "x"\n')
    issue = one_issue(path)
    assert issue.line == 5
    assert issue.message == "unknown table 'actors' in the pipeline file"
    assert issue.hint == "did you mean 'actor'?"


def test_unknown_supervisor_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[supervisor]\nrestrat = "always"\n' + HEAD)
    issue = one_issue(path)
    assert issue.line == 2 and "'restrat'" in issue.message
    assert issue.hint == "did you mean 'restart'?"


def test_unknown_actor_key(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + 'inptus = ["x.audio"]\n')
    issue = one_issue(path)
    assert issue.line == 4
    assert issue.message == "unknown key 'inptus' in actor 'mic'"
    assert issue.hint == "did you mean 'inputs'?"


# -- types and ranges ------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected", "hint"), [
    ('replicas = "2"', "replicas must be an integer >= 1, got string '2'", "write replicas = 2"),
    ("replicas = 0", "replicas = 0 is out of range: it must be an integer >= 1", None),
    ("max_inflight = 0", "max_inflight = 0 is out of range", None),
    ("replicas = 1.5", "replicas must be an integer >= 1, got float 1.5", None),
    ("replicas = true", "replicas must be an integer >= 1, got boolean True", None),
    ('inputs = "mic.audio"', "inputs must be an array", 'write inputs = ["mic.audio"]'),
    ('params = "x"', "params must be a table", None),
    ("hang_timeout_s = 0", "hang_timeout_s = 0 is out of range: it must be a number > 0", None),
    ('restart = "sometimes"', "restart = 'sometimes' is not one of", None),
    ("env = { TOKEN = 5 }", "env.TOKEN must be a string, got integer 5", 'quote it: TOKEN = "5"'),
    ("params = { when = 2024-01-01 }", "params.when holds a TOML date", None),
])
def test_wrong_types_and_ranges(tmp_path: Path, line: str, expected: str,
                                hint: str | None) -> None:
    path = write(tmp_path, HEAD + line + "\n")
    issue = one_issue(path)
    assert issue.line == 4
    assert issue.message.startswith("actor 'mic': ")
    assert expected in issue.message
    if hint is not None:
        assert issue.hint == hint


def test_on_give_up_must_be_stop_or_degrade(tmp_path: Path) -> None:
    path = write(tmp_path, '[pipeline]\non_give_up = "degrad"\n' + HEAD)
    issue = one_issue(path)
    assert issue.line == 2 and issue.hint == "did you mean 'degrade'?"


def test_hang_timeout_must_exceed_the_heartbeat(tmp_path: Path) -> None:
    path = write(tmp_path, "[supervisor]\nheartbeat_interval_s = 1.0\nhang_timeout_s = 0.5\n"
                 + HEAD)
    issue = one_issue(path)
    assert issue.line == 3
    assert "hang_timeout_s (0.5) must be longer than heartbeat_interval_s (1)" in issue.message


# -- names --------------------------------------------------------------------------------


def test_missing_name(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f'\n[[actor]]\nplugin = "{MODULE}:Mic"\n')
    issue = one_issue(path)
    assert issue.line == 5 and issue.message == "[[actor]] #2: missing name"


def test_missing_plugin(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + '\n[[actor]]\nname = "cam"\n')
    issue = one_issue(path)
    assert issue.line == 5 and issue.message == "actor 'cam': missing plugin"


def test_duplicate_actor_names(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + HEAD)
    issue = one_issue(path)
    assert issue.line == 6  # the second name
    assert issue.message == "duplicate actor name 'mic' (first defined on line 1)"


@pytest.mark.parametrize("name", ["my.mic", "1mic", "sys"])
def test_invalid_actor_names(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, f'[[actor]]\nname = "{name}"\nplugin = "{MODULE}:Mic"\n')
    issue = one_issue(path)
    assert issue.line == 2 and repr(name) in issue.message


# -- plugins -------------------------------------------------------------------------------


@pytest.mark.parametrize(("ref", "message", "hint"), [
    ("cfg_plugnis:Mic", "module 'cfg_plugnis' is not importable", "did you mean 'cfg_plugins'?"),
    (f"{MODULE}:Mik", f"'{MODULE}' has no attribute 'Mik'", "did you mean 'Mic'?"),
    ("no_such_plugin_name", "no installed plugin has this name", "installed plugins:"),
    (f"{MODULE}:NotAPluginClass", "does not derive from a va-actors plugin base class",
     "subclass one of the va_actors.core bases"),
    (f"{MODULE}:factory", "names a function, not a class", None),
    (f"{MODULE}:HalfSTT", "is abstract: it does not implement process_audio", None),
    ("bad ref:X", "malformed reference", "package.module:Class"),
])
def test_unknown_or_unusable_plugin(tmp_path: Path, ref: str, message: str,
                                    hint: str | None) -> None:
    path = write(tmp_path, f'# plugins\n[[actor]]\nname = "a"\nplugin = "{ref}"\n')
    issue = one_issue(path)
    assert issue.line == 4
    assert issue.message.startswith(f"actor 'a': plugin {ref!r}")
    assert message in issue.message
    if hint is not None:
        assert hint in str(issue.hint)


def test_plugin_module_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "broken_plugin.py").write_text("import missing_dependency_xyz\n")
    path = write(tmp_path, '[[actor]]\nname = "a"\nplugin = "broken_plugin:X"\n')
    issue = one_issue(path)
    assert issue.line == 3 and "importing 'broken_plugin' failed" in issue.message
    assert "missing_dependency_xyz" in str(issue.hint)


def test_params_are_checked_against_the_plugin_signature(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f"""
        [[actor]]
        name = "stt"
        plugin = "{MODULE}:MySTT"
        inputs = ["mic.audio"]
        [actor.params]
        modle = "base"
    """)
    issue = one_issue(path)
    assert issue.line == 10
    assert issue.message == "actor 'stt': MySTT has no parameter 'modle'"
    assert issue.hint == "did you mean 'model'?"


def test_required_params_must_be_given(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[actor]]\nname = "stt"\nplugin = "{MODULE}:NeedsKey"\n')
    issue = one_issue(path)
    assert issue.line == 1 and "needs parameter(s) api_key" in issue.message


# -- the graph --------------------------------------------------------------------------------


def test_input_naming_an_unknown_actor(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f"""
        [[actor]]
        name = "stt"
        plugin = "{MODULE}:MySTT"
        inputs = ["mik.audio"]
    """)
    issue = one_issue(path)
    assert issue.line == 8
    assert issue.message == "actor 'stt': input 'mik.audio' names unknown actor 'mik'"
    assert issue.hint == "did you mean 'mic'?"


def test_input_naming_a_stream_the_producer_does_not_publish(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f"""
        [[actor]]
        name = "stt"
        plugin = "{MODULE}:MySTT"
        inputs = ["mic.audio"]
        [[actor]]
        name = "llm"
        plugin = "{MODULE}:EchoLLM"
        inputs = ["stt.transcripts"]
    """)
    issue = one_issue(path)
    assert issue.line == 12
    assert issue.message == ("actor 'llm': input 'stt.transcripts': stt (stt plugin) publishes "
                             "no stream 'transcripts'; it publishes events, transcript, turn")
    assert issue.hint == "did you mean 'stt.transcript'?"


def test_streams_of_nodes_are_not_validated(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f'[[actor]]\nname = "stt"\nplugin = "{MODULE}:MySTT"\n'
                 'inputs = ["mic.anything"]\n')
    assert load_pipeline(path).actor("mic").outputs == ("anything", "events")


def test_a_processor_reading_two_video_streams_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f"""
        [[actor]]
        name = "cam2"
        plugin = "{MODULE}:Mic"

        [[actor]]
        name = "faces"
        plugin = "{MODULE}:Faces"
        inputs = ["mic.video",
                  {{ topic = "cam2.video", fps = 5 }}]
    """)
    issue = one_issue(path)
    assert issue.line == 13  # at the second video input
    assert issue.message == (
        "actor 'faces': reads 2 video streams (mic.video, cam2.video), but a "
        "video_processor plugin sees one video track: their frames would interleave in it")
    assert issue.hint is not None and "add another actor" in issue.hint


def test_actor_reading_its_own_output(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + 'inputs = ["mic.audio"]\n')
    issue = one_issue(path)
    assert issue.line == 4 and issue.message == "actor 'mic': reads its own output 'mic.audio'"


@pytest.mark.parametrize(("entry", "message"), [
    ('"mic"', "input 'mic' names no stream"),
    ('"sys.epoch"', "'sys' topics are the supervisor's control channel"),
    ('"mic.a.b"', "invalid stream name 'a.b'"),
    ("3", "inputs entries must be strings or tables, got integer 3"),
    ('"mic.audio", "mic.audio"', "input 'mic.audio' is listed twice"),
])
def test_malformed_inputs(tmp_path: Path, entry: str, message: str) -> None:
    path = write(tmp_path, HEAD + f'[[actor]]\nname = "stt"\nplugin = "{MODULE}:MySTT"\n'
                 f"inputs = [{entry}]\n")
    issue = one_issue(path)
    assert issue.line == 7 and message in issue.message


def test_cycle_is_reported_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f"""
        [[actor]]
        name = "tts"
        plugin = "{MODULE}:MyTTS"
        inputs = ["llm.text"]
        [[actor]]
        name = "stt"
        plugin = "{MODULE}:MySTT"
        inputs = [
            "mic.audio",
            "tts.audio",
        ]
        [[actor]]
        name = "llm"
        plugin = "{MODULE}:EchoLLM"
        inputs = ["stt.transcript"]
    """)
    issue = one_issue(path)
    assert issue.line == 8  # tts comes first in the file: its input closes the loop
    assert issue.message.startswith(
        "input cycle tts -> stt -> llm -> tts would feed agent audio back into itself")
    assert "(tts reads 'llm.text')" in issue.message


def test_cycle_element_line_in_a_multiline_array(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + f"""
        [[actor]]
        name = "stt"
        plugin = "{MODULE}:MySTT"
        inputs = [
            "mic.audio",
            "tts.audio",
        ]
        [[actor]]
        name = "tts"
        plugin = "{MODULE}:MyTTS"
        inputs = ["stt.transcript"]
    """)
    issue = one_issue(path)
    assert issue.line == 10 and "input cycle stt -> tts -> stt" in issue.message


# -- services and the whole file --------------------------------------------------------------


@pytest.mark.parametrize(("body", "message"), [
    ('name = "llm"\ncommand = "llama-server --port 1"', "command must be a non-empty array"),
    ('name = "llm"\ncommand = []', "command must be a non-empty array"),
    ('command = ["x"]', "[[service]] #1: missing name"),
    ('name = "llm"\ncommand = ["x"]\nhealth_url = "localhost:1"', "is not an http(s) URL"),
    ('name = "llm"\ncommand = ["x"]\nport = 1', "unknown key 'port'"),
])
def test_malformed_services(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, HEAD + "[[service]]\n" + body + "\n")
    issue = one_issue(path)
    assert message in issue.message
    assert issue.line is not None and issue.line >= 4


def test_every_problem_is_reported_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
        [pipeline]
        on_give_up = "later"
        [[actor]]
        name = "stt"
        plugin = "{MODULE}:MySTT"
        inputs = ["nobody.audio"]
        replicas = 0
        [[actor]]
        name = "stt"
        plugin = "nowhere:X"
    """)
    found = issues_of(path)
    assert [issue.line for issue in found] == [2, 6, 7, 9, 10]
    text = str(ConfigError(found))
    assert text.splitlines()[0].startswith(f"{path}:2: on_give_up = 'later' is not one of")


def test_issue_format() -> None:
    issue = ConfigIssue("p.toml", 3, "bad thing", "do this")
    assert str(issue) == "p.toml:3: bad thing (hint: do this)"
    assert str(ConfigIssue("p.toml", 3, "bad thing")) == "p.toml:3: bad thing"


# -- line scanning ------------------------------------------------------------------------------


def test_scan_lines_maps_tables_keys_and_subtables() -> None:
    lines = scan_lines(textwrap.dedent('''
        name = "x"
        notes = """
        [[actor]]
        fake = 1
        """
        [[actor]]
        name = "a"
        params.model = "m"
        [actor.params]
        rate = 16000
        [[actor]]
        "quoted key" = 1
        inputs = [
          "a.audio",
          ["nested"],
        ]
        after = 2
    ''').lstrip("\n"))
    assert lines.line(("name",)) == 1
    assert lines.line(("actor", 0)) == 6
    assert lines.line(("actor", 0, "params", "model")) == 8
    assert lines.line(("actor", 0, "params", "rate")) == 10
    assert lines.line(("actor", 0, "params", "unknown")) == 8
    assert lines.line(("actor", 1)) == 11
    assert lines.line(("actor", 1, "quoted key")) == 12
    assert lines.line(("actor", 1, "after")) == 17
    assert lines.element_line(("actor", 1, "inputs"), "a.audio") == 14
    assert lines.line(("actor", 2)) == 6  # unknown: falls back to its closest ancestor
    assert lines.line(("nothing",)) == 1


# -- plugins module -------------------------------------------------------------------------------


def test_resolve_and_category(tmp_path: Path) -> None:
    write(tmp_path, HEAD)
    stt_class = resolve(f"{MODULE}:MySTT", [tmp_path])
    assert category(stt_class) is Category.STT
    assert category(resolve(f"{MODULE}:EchoLLM", [tmp_path])) is Category.LLM
    assert category(resolve(f"{MODULE}:Mic", [tmp_path])) is Category.NODE
    with pytest.raises(NotAPlugin):
        category(resolve(f"{MODULE}:NotAPluginClass", [tmp_path]))
    with pytest.raises(PluginNotFound, match="no installed plugin has this name"):
        resolve("definitely_not_installed_xyz")


def test_resolve_reports_import_failures(tmp_path: Path) -> None:
    (tmp_path / "broken_raises.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginLoadError, match="RuntimeError: boom"):
        resolve("broken_raises:X", [tmp_path])


def test_resolve_loads_entry_points(tmp_path: Path) -> None:
    write(tmp_path, HEAD)
    info = tmp_path / "cfg_fake_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cfg-fake-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[va_actors.plugins]\ncfg_fake = {MODULE}:MySTT\ncfg_gone = {MODULE}:Gone\n")
    sys.path.insert(0, str(tmp_path))
    assert resolve("cfg_fake").__name__ == "MySTT"
    with pytest.raises(PluginNotFound, match="which does not exist"):
        resolve("cfg_gone")
    with pytest.raises(PluginNotFound) as caught:
        resolve("cfg_fak")
    assert caught.value.hint == "did you mean 'cfg_fake'?"


@pytest.mark.parametrize(("cat", "streams"), [
    (Category.STT, {"transcript", "turn", "events"}),
    (Category.TURN, {"turn", "events"}),
    (Category.LLM, {"text", "events"}),
    (Category.VLM, {"text", "events"}),
    (Category.TTS, {"audio", "events"}),
    (Category.REALTIME, {"audio", "transcript", "turn", "events"}),
    (Category.VIDEO_PROCESSOR, {"video", "state", "events"}),
    (Category.AUDIO_PROCESSOR, {"state", "events"}),
    (Category.NODE, set()),
])
def test_outputs_per_category(cat: Category, streams: set[str]) -> None:
    assert outputs(cat) == streams


@pytest.mark.parametrize(("toml", "line", "message"), [
    ("", 1, "the pipeline defines no actors"),
    ('[pipeline]\nname = "x"\n\n[actor]\nname = "a"\n', 4, "[actor] must be an array of tables"),
    ("actor = 5\n", 1, "actor must be written as [[actor]] tables, got integer"),
    ("[[supervisor]]\nrestart = 'never'\n" + HEAD, 1, "supervisor must be a table, got array"),
    ("[pipeline]\nname = 7\n" + HEAD, 2, "name must be a string, got integer 7"),
    ('[pipeline]\nname = "my pipeline"\n' + HEAD, 2, "invalid pipeline name 'my pipeline'"),
    ('name = "top"\n' + HEAD, 1, "unknown key 'name' in the pipeline file"),
])
def test_malformed_top_level(tmp_path: Path, toml: str, line: int, message: str) -> None:
    issue = one_issue(write(tmp_path, toml))
    assert issue.line == line and message in issue.message
