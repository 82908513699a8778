"""Rebuild the human-speech corpus (WAVs + corpus.json) from the public sources.

    .venv/bin/python bench/assets/speech/build.py [--mirror DIR] [--check]

Every utterance is a real recording of a person, taken from the public test
assets of open projects (see LICENSES.md). The sources are git snapshots of
those repositories, read at pinned commits with ``git show`` from
``--mirror`` (default /work/.mirror, one ``<owner>+<name>/repo`` git
directory per repository). The committed WAVs are what the tests and the
bench read; this script only documents and repeats how they were made (CI
has no internet and never runs it).

Per utterance: decode (PyAV), convert to 16 kHz mono with our stateful
``Resampler``, optionally cut a stretch or splice two clips of one recording
(the manifest says so), find speech with Silero VAD (32 ms frames, P >= 0.5),
keep 0.3 s before the first and after the last speech frame (padding with
digital silence where the source had less), and measure the pauses inside
(non-speech runs of at least 200 ms between speech frames). ``--check``
rebuilds into memory and reports differences from the committed files.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import wave
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from va_actors.core.audio import AudioFormat, PcmData, Resampler
from va_actors.plugins.silero._vad import FRAME_SAMPLES, SileroModel

HERE = Path(__file__).resolve().parent
RATE = 16_000
EDGE_S = 0.3
MIN_PAUSE_S = 0.2
SPEECH_P = 0.5
Audio = npt.NDArray[np.float32]

# Pinned snapshots: (repository, commit).
WHISPER = ("openai/whisper", "c0d2f624c09dc18e709e37c2ad90c039a4eb72a2")
PYROOM = ("LCAV/pyroomacoustics", "6fe43fecb7c358ac9aaa054e7e73641189f1afff")
COQUI = ("coqui-ai/TTS", "dbf1a08a0d4e47fdad6172e433eeb34bc6b13b4e")
LHOTSE = ("lhotse-speech/lhotse", "a79cc864e4275f6342bb94261313526a14d385fb")
TFLM = ("tensorflow/tflite-micro", "90b983c2b3f1480642e040bbd2ddb37b998f3424")
SPHINX = ("cmusphinx/pocketsphinx", "511126b492dcb267cf30d49d631946d7b61a9530")
HF = ("huggingface/datasets", "d7dfbc83d68e87ba002c5eb2555f7a932e59038a")
"""The last commit of huggingface/datasets that still had the per-dataset dummy data."""

CC_BY = "CC BY 4.0"
PD = "public domain"
ARCTIC = "CMU ARCTIC licence (free use, modification and redistribution, keep the notice)"
LJ = ("Linda Johnson (LJSpeech)", "US", "F")
LIBRIVOX = ("LibriVox reader of Sense and Sensibility ch. 1", None, None)


@dataclass(frozen=True)
class Clip:
    """One source file (or a member of a zip file in a repository)."""

    repo: tuple[str, str]
    path: str
    member: str | None = None
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True)
class Item:
    """One corpus utterance and where it comes from."""

    id: str
    text: str
    category: str
    speaker: str
    accent: str | None
    sex: str | None
    licence: str
    author: str
    clips: tuple[Clip, ...]
    splice_gap_s: float = 0.0
    changes: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _arctic(name: str, text: str, category: str = "sentence") -> Item:
    speaker = name.split("_")[0]
    accent, sex = {"aew": ("US", "M"), "axb": ("Indian", "F")}[speaker]
    return Item(
        f"arctic_{name}",
        text,
        category,
        f"CMU ARCTIC {speaker}",
        accent,
        sex,
        ARCTIC,
        "Carnegie Mellon University, Language Technologies Institute",
        (Clip(PYROOM, f"examples/input_samples/cmu_arctic_us_{name}.wav"),),
    )


def _lj(number: str, text: str, category: str) -> Item:
    return Item(
        f"ljspeech_{number.lower().replace('-', '_')}",
        text,
        category,
        *LJ,
        PD,
        "Linda Johnson, read for LibriVox; LJSpeech 1.1 (Keith Ito)",
        (Clip(COQUI, f"tests/data/ljspeech/wavs/{number}.wav"),),
    )


def _librivox(number: str, text: str, category: str = "sentence", notes: str = "") -> Item:
    return Item(
        f"librivox_sense_{number}",
        text,
        category,
        *LIBRIVOX,
        PD,
        "LibriVox volunteer (recording in the public domain)",
        (Clip(SPHINX, f"test/data/librivox/sense_and_sensibility_01_austen_64kb-{number}.wav"),),
        notes=notes,
    )


_VCTK = "datasets/vctk/dummy/main/0.9.2/dummy_data.zip"
_VCTK_DIR = "dummy_data/VCTK-Corpus-0.92.zip/wav48_silence_trimmed"
_LS = "datasets/librispeech_asr/dummy/clean/2.1.0/dummy_data.zip"
_SC = "tensorflow/lite/micro/examples/micro_speech/testdata"

ITEMS: tuple[Item, ...] = (
    Item(
        "jfk_ask_not",
        "And so, my fellow Americans, ask not what your country can do for "
        "you, ask what you can do for your country.",
        "long",
        "John F. Kennedy",
        "US (Boston)",
        "M",
        PD,
        "John F. Kennedy, inaugural address, 20 January 1961 (a work of the US federal government)",
        (Clip(WHISPER, "tests/jfk.flac"),),
    ),
    Item(
        "librispeech_2412_153948_0000",
        "If the reader will excuse me, I will say nothing of "
        "my antecedents, nor of the circumstances which led me to leave my native country; "
        "the narrative would be tedious to him and painful to myself.",
        "long",
        "LibriSpeech speaker 2412",
        None,
        None,
        CC_BY,
        "LibriSpeech (Panayotov et al., OpenSLR 12) from a LibriVox reading of Erewhon",
        (Clip(LHOTSE, "test/fixtures/mix_cut_test/audio/storage/2412-153948-0000.flac"),),
    ),
    Item(
        "ljspeech_lj001_0001_0002",
        "Printing, in the only sense with which we are at present "
        "concerned, differs from most if not from all the arts and crafts represented in the "
        "Exhibition in being comparatively modern.",
        "long",
        *LJ,
        PD,
        "Linda Johnson, read for LibriVox; LJSpeech 1.1 (Keith Ito)",
        (
            Clip(COQUI, "tests/data/ljspeech/wavs/LJ001-0001.wav"),
            Clip(COQUI, "tests/data/ljspeech/wavs/LJ001-0002.wav"),
        ),
        changes="spliced: two consecutive LJSpeech clips (one sentence of the same "
        "recording, which LJSpeech had cut at this pause), each trimmed to 0.3 s of silence "
        "and joined, so the pause between them is about 0.6 s plus the clips' own",
    ),
    _lj(
        "LJ001-0014",
        "And it was a matter of course that in the Middle Ages, when the craftsmen took care "
        "that beautiful form should always be a part of their productions whatever they were,",
        "long",
    ),
    _lj(
        "LJ001-0015",
        "the forms of printed letters should be beautiful, and that their "
        "arrangement on the page should be reasonable and a help to the shapeliness of the "
        "letters themselves.",
        "long",
    ),
    _lj(
        "LJ001-0003",
        "For although the Chinese took impressions from wood blocks engraved in "
        "relief for centuries before the woodcutters of the Netherlands, by a similar process",
        "long",
    ),
    _lj(
        "LJ001-0022",
        "of the more formal ecclesiastical writing which obtained at that time; this has "
        'since been called "missal type,"',
        "pause",
    ),
    _lj(
        "LJ001-0027",
        "especially as regards the lower-case letters; and type very similar was used during "
        "the next fifteen or twenty years not only by Schoeffer,",
        "pause",
    ),
    _lj(
        "LJ001-0025",
        "imitates a much freer hand, simpler, rounder, and less spiky, and "
        "therefore far pleasanter and easier to read.",
        "pause",
    ),
    _lj(
        "LJ001-0010",
        "Now, as all books not primarily intended as picture-books consist principally of "
        "types composed to form letterpress,",
        "pause",
    ),
    _lj(
        "LJ001-0028",
        "but by printers in Strasburg, Basle, Paris, Lubeck, and other cities.",
        "pause",
    ),
    _lj(
        "LJ001-0012",
        "especially as no more time is occupied, or cost incurred, in casting, setting, or "
        "printing beautiful letters",
        "pause",
    ),
    Item(
        "ami_es2011a_abigail",
        "I'm Abigail Claflin. You can call me Abbie.",
        "pause",
        "AMI ES2011a FEE041",
        None,
        "F",
        CC_BY,
        "AMI Meeting Corpus (University of Edinburgh, Idiap, TNO), meeting ES2011a",
        (Clip(LHOTSE, "test/fixtures/ami/ES2011a.Headset-0-40s-46s.wav"),),
        notes="spontaneous speech (meeting introduction); the AMI transcript has 'um' before "
        "'I'm', which falls (almost) before this 6 s excerpt and is not counted",
    ),
    _arctic("aew_a0001", "Author of the danger trail, Philip Steels, etc."),
    _arctic("aew_a0002", "Not at this particular case, Tom, apologized Whittemore."),
    _arctic("aew_a0003", "For the twentieth time that evening the two men shook hands."),
    _arctic("axb_a0004", "Lord, but I'm glad to see you again, Phil."),
    _arctic("axb_a0005", "Will we ever forget it?", "question"),
    _arctic("axb_a0006", "God bless 'em, I hope I'll go on seeing them forever."),
    Item(
        "arctic_a0010",
        "I'm playing a single hand in what looks like a losing game.",
        "sentence",
        "CMU ARCTIC (speaker not named by the source)",
        None,
        None,
        ARCTIC,
        "Carnegie Mellon University, Language Technologies Institute",
        (Clip(PYROOM, "notebooks/arctic_a0010.wav"),),
    ),
    _librivox(
        "0870",
        "And Mister John Dashwood had then leisure to consider how much there "
        "might be prudently in his power to do for them.",
    ),
    _librivox("0880", "He was not an ill-disposed young man,"),
    _librivox("0890", "unless to be rather cold-hearted and rather selfish is to be ill-disposed."),
    _librivox(
        "0920",
        "Had he married a more, a amiable woman, he might have been made still "
        "more respectable than he was;",
        "hesitation",
        notes="a false start and repair ('a more, a amiable'), as transcribed by "
        "pocketsphinx's test data",
    ),
    _librivox("0930", "he might even have been made amiable himself;"),
    Item(
        "vctk_p225_001",
        "Please call Stella.",
        "short",
        "VCTK p225",
        "English (Southern England)",
        "F",
        CC_BY,
        "CSTR VCTK Corpus 0.92 (University of Edinburgh)",
        (Clip(HF, _VCTK, f"{_VCTK_DIR}/p225/p225_001_mic1.flac"),),
    ),
    Item(
        "vctk_p225_002",
        "Ask her to bring these things with her from the store.",
        "sentence",
        "VCTK p225",
        "English (Southern England)",
        "F",
        CC_BY,
        "CSTR VCTK Corpus 0.92 (University of Edinburgh)",
        (Clip(HF, _VCTK, f"{_VCTK_DIR}/p225/p225_002_mic1.flac"),),
    ),
    Item(
        "vctk_p226_001",
        "Please call Stella.",
        "short",
        "VCTK p226",
        "English (Surrey)",
        "M",
        CC_BY,
        "CSTR VCTK Corpus 0.92 (University of Edinburgh)",
        (Clip(HF, _VCTK, f"{_VCTK_DIR}/p226/p226_001_mic1.flac"),),
    ),
    Item(
        "librispeech_1272_128104_0000",
        # The dummy member named -0000 holds the audio of 1272-128104-0001 (77040
        # samples, 4.815 s: that utterance's length; -0000 is 5.855 s), though its
        # trans.txt gives -0000's text. The text here is what is spoken.
        "Nor is Mister Quilter's manner less interesting than his matter.",
        "sentence",
        "LibriSpeech speaker 1272",
        None,
        "M",
        CC_BY,
        "LibriSpeech (Panayotov et al., OpenSLR 12), dev-clean",
        (
            Clip(
                HF,
                _LS,
                "dummy_data/dev-clean.tar.gz/LibriSpeech/dev-clean/1272/128104/"
                "1272-128104-0000.flac",
            ),
        ),
        notes="the member named 1272-128104-0000 is the recording of 1272-128104-0001 "
        "(its length, 4.815 s, and its words); the reference is the words spoken",
    ),
    Item(
        "speech_commands_yes",
        "Yes.",
        "short",
        "Speech Commands speaker (anonymous)",
        None,
        None,
        CC_BY,
        "Speech Commands v2 (Pete Warden, Google)",
        (Clip(TFLM, f"{_SC}/yes_1000ms.wav"),),
    ),
    Item(
        "speech_commands_no",
        "No.",
        "short",
        "Speech Commands speaker (anonymous)",
        None,
        None,
        CC_BY,
        "Speech Commands v2 (Pete Warden, Google)",
        (Clip(TFLM, f"{_SC}/no_1000ms.wav"),),
    ),
    Item(
        "sphinx_go_forward",
        "Go forward ten meters.",
        "short",
        "CMU Sphinx test speaker",
        None,
        None,
        "BSD-2-Clause (pocketsphinx)",
        "CMU Sphinx project, pocketsphinx test data",
        (Clip(SPHINX, "test/data/goforward.raw"),),
        changes="raw 16 kHz s16 mono given a WAV header",
    ),
    Item(
        "ljspeech_lj002_0020",
        "In eighteen thirteen",
        "short",
        *LJ,
        PD,
        "Linda Johnson, read for LibriVox; LJSpeech 1.1 (Keith Ito)",
        (Clip(LHOTSE, "test/fixtures/ljspeech/storage/LJ002-0020.wav"),),
    ),
    Item(
        "ljspeech_lj002_0035",
        "Eight. The press yard.",
        "short",
        *LJ,
        PD,
        "Linda Johnson, read for LibriVox; LJSpeech 1.1 (Keith Ito)",
        (Clip(LHOTSE, "test/fixtures/ljspeech/storage/LJ002-0035.wav"),),
    ),
    _lj("LJ001-0008", "has never been surpassed.", "short"),
)


# -- reading the sources --------------------------------------------------------------
def read_blob(mirror: Path, repo: tuple[str, str], path: str) -> bytes:
    """One file of a repository snapshot at the pinned commit."""
    git_dir = mirror / repo[0].replace("/", "+") / "repo"
    if not git_dir.exists():
        raise SystemExit(f"{git_dir} missing: fetch github:{repo[0]} first")
    done = subprocess.run(
        ["git", "-C", str(git_dir), "show", f"{repo[1]}:{path}"], capture_output=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{repo[0]}@{repo[1][:10]}:{path}: {done.stderr.decode().strip()}")
    return done.stdout


def decode(data: bytes, raw: bool) -> Audio:
    """Any audio file (or raw 16 kHz s16 mono) as 16 kHz mono float32."""
    resampler = Resampler(RATE, 1, AudioFormat.F32)
    if raw:
        parts = [resampler.process(PcmData.from_bytes(data, RATE, AudioFormat.S16, 1))]
    else:
        with av.open(io.BytesIO(data)) as container:
            parts = [
                resampler.process(PcmData.from_av_frame(frame))
                for frame in container.decode(audio=0)
            ]
    parts.append(resampler.flush())
    return np.concatenate([p.samples.reshape(-1) for p in parts]).astype(np.float32)


def load_clip(mirror: Path, clip: Clip) -> Audio:
    """The clip's audio, cut to its stretch if it has one."""
    data = read_blob(mirror, clip.repo, clip.path)
    if clip.member is not None:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = archive.read(clip.member)
    audio = decode(data, raw=clip.path.endswith(".raw"))
    start = round((clip.start_s or 0.0) * RATE)
    end = round(clip.end_s * RATE) if clip.end_s is not None else audio.size
    return audio[start:end]


# -- speech, trimming and pauses --------------------------------------------------------
def speech_frames(audio: Audio) -> npt.NDArray[np.bool_]:
    """Silero VAD over 32 ms frames: True where P(speech) >= 0.5."""
    model = SileroModel()
    count = audio.size // FRAME_SAMPLES
    return np.array(
        [
            model.probability(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) >= SPEECH_P
            for i in range(count)
        ],
        dtype=bool,
    )


def trim(audio: Audio, item_id: str) -> Audio:
    """Keep EDGE_S before the first and after the last speech frame (zero-padded)."""
    speech = np.flatnonzero(speech_frames(audio))
    if speech.size == 0:
        raise SystemExit(f"{item_id}: Silero finds no speech in the source")
    edge = round(EDGE_S * RATE)
    first, last = speech[0] * FRAME_SAMPLES, (speech[-1] + 1) * FRAME_SAMPLES
    lead = np.zeros(max(0, edge - first), np.float32)
    tail = np.zeros(max(0, last + edge - audio.size), np.float32)
    return np.concatenate([lead, audio[max(0, first - edge) : last + edge], tail])


def measure(audio: Audio) -> tuple[tuple[float, float], list[list[float]]]:
    """(speech start, speech end) and the pauses inside, in seconds."""
    frames = speech_frames(audio)
    speech = np.flatnonzero(frames)
    step = FRAME_SAMPLES / RATE
    pauses: list[list[float]] = []
    gap_start: int | None = None
    for i in range(speech[0], speech[-1] + 1):
        if not frames[i]:
            gap_start = i if gap_start is None else gap_start
            continue
        if gap_start is not None and (i - gap_start) * step >= MIN_PAUSE_S:
            pauses.append([round(gap_start * step, 3), round(i * step, 3)])
        gap_start = None
    return (round(speech[0] * step, 3), round((speech[-1] + 1) * step, 3)), pauses


def to_s16(audio: Audio) -> npt.NDArray[np.int16]:
    """Float samples as s16 (clipped)."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def wav_bytes(samples: npt.NDArray[np.int16]) -> bytes:
    """A 16 kHz mono s16 WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


# -- one utterance ----------------------------------------------------------------------
def build_item(mirror: Path, item: Item) -> tuple[bytes, dict[str, Any]]:
    """The WAV bytes and the manifest entry of ``item``."""
    parts = [trim(load_clip(mirror, clip), item.id) for clip in item.clips]
    if len(parts) > 1:
        # Each part keeps its 0.3 s edges, so the splice pause is 0.6 s plus the gap.
        gap = np.zeros(round(item.splice_gap_s * RATE), np.float32)
        joined: list[Audio] = []
        for i, part in enumerate(parts):
            joined += [gap, part] if i else [part]
        audio = trim(np.concatenate(joined), item.id)
    else:
        audio = parts[0]
    samples = to_s16(audio)
    speech, pauses = measure(samples.astype(np.float32) / 32768.0)
    changes = [
        "decoded, resampled to 16 kHz mono s16 (va_actors Resampler)",
        f"leading and trailing silence trimmed to {EDGE_S} s (Silero VAD)",
    ]
    if item.changes:
        changes.append(item.changes)
    entry: dict[str, Any] = {
        "id": item.id,
        "file": f"{item.id}.wav",
        "text": item.text,
        "speaker": item.speaker,
        "accent": item.accent,
        "sex": item.sex,
        "duration_s": round(samples.size / RATE, 3),
        "speech_s": list(speech),
        "pauses": pauses,
        "category": item.category,
        "source": [
            {
                "repo": c.repo[0],
                "commit": c.repo[1],
                "path": c.path,
                **({"member": c.member} if c.member else {}),
                "url": f"https://github.com/{c.repo[0]}/blob/{c.repo[1]}/{c.path}",
            }
            for c in item.clips
        ],
        "licence": item.licence,
        "author": item.author,
        "changes": changes,
        "spliced": len(item.clips) > 1,
    }
    if item.notes:
        entry["notes"] = item.notes
    return wav_bytes(samples), entry


LICENCE_HEADER = """\
# Licences of the human-speech corpus

Every file here is a real recording of a person (no synthetic voice), taken
from the public test assets of open projects and redistributed under the
licence of the recording, with the attribution below. Generated by
`build.py` from the same table as `corpus.json`; the repositories' own
licences (MIT, Apache-2.0, MPL-2.0, BSD) cover their code, the recordings
carry their corpus licences:

- **CC BY 4.0** (https://creativecommons.org/licenses/by/4.0/): LibriSpeech
  (Vassil Panayotov, Guoguo Chen, Daniel Povey, Sanjeev Khudanpur; OpenSLR 12,
  from LibriVox recordings), VCTK 0.92 (CSTR, University of Edinburgh), AMI
  Meeting Corpus (AMI Consortium), Speech Commands v2 (Pete Warden, Google).
- **Public domain**: LJSpeech 1.1 (Linda Johnson's LibriVox readings, compiled
  by Keith Ito), LibriVox recordings, and John F. Kennedy's 1961 inaugural
  address (a work of the US federal government).
- **CMU ARCTIC** (http://festvox.org/cmu_arctic/, Carnegie Mellon University):
  free to use, modify and distribute for any purpose, provided the copyright
  notice is kept: "Copyright (c) 2003 Carnegie Mellon University, Language
  Technologies Institute. All rights reserved." (festvox licence).
- **BSD-2-Clause**: pocketsphinx's test recording `goforward.raw`
  (Copyright (c) Carnegie Mellon University, CMU Sphinx).

Changes made to every file: decoded, converted to 16 kHz mono s16 WAV with
va_actors' `Resampler`, leading and trailing silence trimmed to 0.3 s (Silero
VAD; digital silence added where the source had less). Further changes are
listed per file.

| file | source | author | licence | further changes |
|---|---|---|---|---|
"""


def licences_md(entries: list[dict[str, Any]]) -> str:
    """LICENSES.md: the header above and one row per file."""
    rows = []
    for e in entries:
        sources = "<br>".join(
            f"[{s['repo']}/{s['path']}]({s['url']})"
            + (f" member `{s['member'].rsplit('/', 1)[-1]}`" if "member" in s else "")
            for s in e["source"]
        )
        further = "; ".join(e["changes"][2:]) or "none"
        rows.append(f"| {e['file']} | {sources} | {e['author']} | {e['licence']} | {further} |")
    return LICENCE_HEADER + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files instead of writing"
    )
    args = parser.parse_args()
    entries, differ = [], []
    for item in ITEMS:
        data, entry = build_item(args.mirror, item)
        entries.append(entry)
        target = HERE / entry["file"]
        if args.check:
            if not target.exists() or target.read_bytes() != data:
                differ.append(entry["file"])
        else:
            target.write_bytes(data)
        print(
            f"{item.id:<34} {entry['duration_s']:6.2f} s  {item.category:<10} "
            f"pauses {entry['pauses']}",
            flush=True,
        )
    manifest = json.dumps({"sample_rate": RATE, "utterances": entries}, indent=1) + "\n"
    if args.check:
        if (HERE / "corpus.json").read_text() != manifest:
            differ.append("corpus.json")
        if (HERE / "LICENSES.md").read_text() != licences_md(entries):
            differ.append("LICENSES.md")
        print("identical" if not differ else f"differ: {', '.join(differ)}")
        sys.exit(1 if differ else 0)
    (HERE / "corpus.json").write_text(manifest)
    (HERE / "LICENSES.md").write_text(licences_md(entries))


if __name__ == "__main__":
    main()
