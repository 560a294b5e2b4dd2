"""Create a challenge from a template: the public dataset, the private one, a runner config.

``DIR/<id>/``          public DataLad dataset (what participants clone)
``DIR/<id>-private/``  hidden inputs and labels as subdatasets, ``teams.yaml``
``DIR/runner.yaml``    the organizer's runner configuration
``DIR/<id>-results/``  the ledger, created by the first runner pass
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from jc_datalad import launcher
from jc_datalad.config import default_cache_dir, save_teams, write_config
from jc_datalad.errors import JcError
from jc_datalad.gitutil import ensure_identity
from jc_datalad.spec import load_spec

lgr = logging.getLogger(__name__)

CONTAINER = "jc-env"
#: The call format datalad-container expands; the runner checks recorded commands against it.
#: The interpreter is the word ``python3``, looked up on PATH where the record is re-executed,
#: never ``{python}`` (the recording machine's absolute interpreter path, which no other machine
#: has). Records made with the older ``{python}`` format are still accepted
#: (:func:`jc_datalad.provenance.call_prefix_pattern`).
CALL_FORMAT = "python3 {img_dspath}/.datalad/environments/%s/launch.py {img} {cmd}"
#: The call format of challenges made before the portable one; their records name an absolute interpreter.
LEGACY_CALL_FORMAT = "{python} {img_dspath}/.datalad/environments/%s/launch.py {img} {cmd}"


@dataclass(frozen=True)
class NewChallenge:
    public: Path
    private: Path
    results: Path
    config: Path


def _discover() -> tuple[str, ...]:
    """Every package in ``challenge_templates`` that has a data generator, sorted by name."""
    import challenge_templates

    root = Path(challenge_templates.__file__).parent
    return tuple(sorted(p.name for p in root.iterdir() if (p / "generate.py").is_file() and p.name.isidentifier()))


#: The templates `jc challenge new` accepts; each follows docs/templates.md.
TEMPLATES = _discover()
#: What each template's ``generate.SIZES`` offers.
SIZE_NAMES = ("default", "large")


def _template_dir(template: str) -> Path:
    if template not in TEMPLATES:
        raise JcError(f"unknown template {template!r}; available: {', '.join(TEMPLATES)}")
    module = importlib.import_module(f"challenge_templates.{template}")
    return Path(module.__file__).parent  # type: ignore[arg-type]


def template_sizes(template: str, size: str = "default", **overrides: int | None) -> Any:
    """The template's ``Sizes`` for ``size``, with the given fields replaced (None: keep).

    ``pixels`` sets ``height`` and ``width`` together, for templates of images.
    """
    gen = importlib.import_module(f"challenge_templates.{template}.generate")
    try:
        sizes = gen.SIZES[size]
    except KeyError:
        raise JcError(f"unknown size {size!r} for template {template!r}; choose one of "
                      f"{', '.join(gen.SIZES)}") from None
    knobs = {k: v for k, v in overrides.items() if v is not None}
    if "pixels" in knobs:
        pixels = knobs.pop("pixels")
        knobs.update(height=pixels, width=pixels)
    fields = {f.name for f in dataclasses.fields(sizes)}
    unknown = sorted(set(knobs) - fields)
    if unknown:
        raise JcError(f"template {template!r} has no setting {', '.join(unknown)}; its settings: "
                      f"{', '.join(sorted(fields))}")
    bad = sorted(k for k, v in knobs.items() if v < 1)
    if bad:
        raise JcError(f"{', '.join(bad)}: must be at least 1")
    return dataclasses.replace(sizes, **knobs)


def template_title(template: str) -> str:
    module = importlib.import_module(f"challenge_templates.{template}")
    title = getattr(module, "TITLE", None)
    if not isinstance(title, str) or not title:
        raise JcError(f"challenge_templates/{template}/__init__.py: set TITLE, the default challenge title")
    return title


def resolve_image(image: str, progress: Callable[[str], None]) -> Path:
    """An image tarball: a path, or the name of a built-in recipe (built and cached)."""
    from jc_datalad import image as images

    if image in images.RECIPES:
        return images.build_image(images.RECIPES[image], cache_dir=default_cache_dir() / "images",
                                  progress=progress)
    path = Path(image)
    if not path.is_file():
        raise JcError(f"{image}: neither an image file nor a recipe ({', '.join(images.RECIPES)})")
    return path


def _save(dl, path: Path, message: str) -> None:
    dl.save(dataset=str(path), message=message, recursive=True, result_renderer="disabled")


def new_challenge(
    template: str,
    directory: Path,
    *,
    challenge_id: str | None = None,
    title: str | None = None,
    image: str = "full",
    size: str = "default",
    items: int | None = None,
    hidden_items: int | None = None,
    frames: int | None = None,
    pixels: int | None = None,
    seed: int = 7,
    start: dt.datetime | None = None,
    weeks: int = 8,
    progress: Callable[[str], None] | None = None,
) -> NewChallenge:
    """Write a new challenge from ``template`` into ``directory``.

    ``size`` names one of the template's data sizes (``default`` runs in seconds, ``large`` is
    realistic); ``items``, ``hidden_items``, ``frames`` and ``pixels`` change single settings of
    templates that have them.
    """
    import datalad.api as dl

    say = progress or (lambda msg: None)
    ensure_identity()
    start = (start or dt.datetime.now(dt.UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    tdir = _template_dir(template)
    gen = importlib.import_module(f"challenge_templates.{template}.generate")
    sizes = template_sizes(template, size, items=items, hidden_items=hidden_items, frames=frames, pixels=pixels)
    cid = challenge_id or f"{template}-challenge"
    public, private = directory / cid, directory / f"{cid}-private"
    results, config = directory / f"{cid}-results", directory / "runner.yaml"
    for path in (public, private):
        if path.exists():
            raise JcError(f"{path}: already exists; choose another directory or remove it")
    directory.mkdir(parents=True, exist_ok=True)
    image_file = resolve_image(image, say)

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tdir)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    variables = {
        "title": title or template_title(template),
        "challenge_id": cid,
        "container": CONTAINER,
        "sizes": sizes,
        "seed": seed,
        # the development phase opens on the day the challenge is created and runs for `weeks`
        "dev_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dev_end": (start + dt.timedelta(weeks=weeks)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "merge_deadline": (start + dt.timedelta(weeks=weeks) / 2).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    say(f"creating the public dataset {public}")
    dl.create(path=str(public), cfg_proc=["text2git"], result_renderer="disabled")
    (public / "challenge.yaml").write_text(env.get_template("challenge.yaml.j2").render(**variables))
    spec = load_spec(public)
    variables.update(metrics=list(spec.metrics.columns), primary=spec.metrics.primary)
    (public / "README.md").write_text(env.get_template("README.md.j2").render(**variables))
    shutil.copytree(tdir / "code", public / "code", ignore=shutil.ignore_patterns("__pycache__"))
    (public / ".gitignore").write_text("__pycache__/\n")
    _save(dl, public, "Challenge description, spec and starter kit")

    with tempfile.TemporaryDirectory() as tmp:
        say(f"generating the {size} data of template {template}")
        data = Path(tmp)
        gen.write_data(data, sizes, seed)
        _check_layout(template, data)
        for folder in sorted((data / "public").iterdir()):
            sub = public / "inputs" / folder.name
            dl.create(dataset=str(public), path=str(sub), result_renderer="disabled")
            _move_contents(folder, sub)
        _save(dl, public, "Public data")

        say(f"creating the private dataset {private}")
        dl.create(path=str(private), cfg_proc=["text2git"], result_renderer="disabled")
        for split in sorted((data / "hidden").iterdir()):
            for part in sorted(split.iterdir()):
                sub = private / "hidden" / split.name / part.name
                dl.create(dataset=str(private), path=str(sub), result_renderer="disabled")
                _move_contents(part, sub)
        save_teams(private, {})
        (private / "README.md").write_text(
            f"# {cid}: organizer-only data\n\nNever publish this dataset. `hidden/<split>/inputs` replace the "
            "public inputs on re-execution; `hidden/<split>/labels` are read by the scorer only; "
            "`hidden/train/`, where a training challenge has it, replaces the public training data "
            "for the training step.\n"
            "`teams.yaml` lists the teams and their submission repositories (`jc team add`).\n"
        )
        _save(dl, private, "Hidden data and labels")

    say(f"adding the container image {image_file.name}")
    add_container(public, image_file, CONTAINER)
    write_config(config, challenge=public, private=private, results=results)
    say(f"wrote {config}")
    return NewChallenge(public, private, results, config)


def _check_layout(template: str, data: Path) -> None:
    """The generator wrote ``public/<folder>/`` and ``hidden/<split>/<part>/`` (docs/templates.md)."""
    where = f"challenge_templates/{template}/generate.py: write_data"
    if not (data / "public" / "test").is_dir():
        raise JcError(f"{where} wrote no public/test folder (the development inputs)")
    if not (data / "hidden").is_dir() or not any(p.is_dir() for p in (data / "hidden").iterdir()):
        raise JcError(f"{where} wrote no hidden/<split>/ folder (hidden inputs and labels)")
    for split in (data / "hidden").iterdir():
        if not split.is_dir() or not any(p.is_dir() for p in split.iterdir()):
            raise JcError(f"{where}: hidden/{split.name} must hold folders (inputs/, labels/, ...)")


def _move_contents(source: Path, dest: Path) -> None:
    for entry in sorted(source.iterdir()):
        shutil.move(entry, dest / entry.name)


def add_container(dataset: Path, image_file: Path, name: str) -> None:
    """Annex the image and its launcher in the dataset and register them with datalad-container."""
    import datalad.api as dl

    envdir = dataset / ".datalad" / "environments" / name
    envdir.mkdir(parents=True, exist_ok=True)
    target = envdir / "image"
    try:
        os.link(image_file, target)
    except OSError:
        shutil.copyfile(image_file, target)
    shutil.copyfile(launcher.__file__, envdir / "launch.py")
    # SHA256E: the image's key then equals the one the launcher derives from the tarball itself,
    # so the runner, the tests and `jc image build` share one unpacked root filesystem
    (envdir / ".gitattributes").write_text("image annex.backend=SHA256E\n")
    dl.save(dataset=str(dataset), path=[str(envdir / "launch.py"), str(envdir / ".gitattributes")], to_git=True,
            message=f"Launcher of container {name}", result_renderer="disabled")
    dl.save(dataset=str(dataset), path=[str(target)], message=f"Image of container {name}",
            result_renderer="disabled")
    dl.containers_add(
        name=name, dataset=str(dataset), image=str(target.relative_to(dataset)),
        call_fmt=CALL_FORMAT % name, result_renderer="disabled",
    )
