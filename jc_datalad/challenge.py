"""Create a challenge from a template: the public dataset, the private one, a runner config.

``DIR/<id>/``          public DataLad dataset (what participants clone)
``DIR/<id>-private/``  hidden inputs and labels as subdatasets, ``teams.yaml``
``DIR/runner.yaml``    the organizer's runner configuration
``DIR/<id>-results/``  the ledger, created by the first runner pass
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from jc_datalad import launcher
from jc_datalad.config import default_cache_dir, save_teams, write_config
from jc_datalad.errors import JcError
from jc_datalad.gitutil import ensure_identity
from jc_datalad.spec import load_spec

lgr = logging.getLogger(__name__)

TEMPLATES = ("bacteria",)
CONTAINER = "jc-env"
#: The call format datalad-container expands; the runner checks recorded commands against it.
CALL_FORMAT = "{python} {img_dspath}/.datalad/environments/%s/launch.py {img} {cmd}"


@dataclass(frozen=True)
class NewChallenge:
    public: Path
    private: Path
    results: Path
    config: Path


def _template_dir(template: str) -> Path:
    if template not in TEMPLATES:
        raise JcError(f"unknown template {template!r}; available: {', '.join(TEMPLATES)}")
    module = importlib.import_module(f"challenge_templates.{template}")
    return Path(module.__file__).parent  # type: ignore[arg-type]


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
    items: int | None = None,
    hidden_items: int | None = None,
    frames: int | None = None,
    size: int | None = None,
    seed: int = 7,
    start: dt.datetime | None = None,
    weeks: int = 8,
    progress: Callable[[str], None] | None = None,
) -> NewChallenge:
    """Write a new challenge from ``template`` into ``directory``."""
    import datalad.api as dl

    say = progress or (lambda msg: None)
    ensure_identity()
    start = (start or dt.datetime.now(dt.UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    tdir = _template_dir(template)
    gen = importlib.import_module(f"challenge_templates.{template}.generate")
    defaults = gen.Sizes()
    sizes = gen.Sizes(
        items=items or defaults.items,
        frames=frames or defaults.frames,
        height=size or defaults.height,
        width=size or defaults.width,
        cells=defaults.cells,
    )
    hidden_sizes = gen.Sizes(**{**vars(sizes), "items": hidden_items or max(sizes.items, 4)})
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
        "title": title or "Bacterial microcolony instance segmentation",
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
        say(f"generating data ({sizes.items} train, {sizes.items} test, {hidden_sizes.items} hidden items)")
        t = Path(tmp)
        gen.write_split(t / "train", split="train", sizes=sizes, seed=seed)
        gen.write_split(t / "test", split="test", sizes=sizes, seed=seed, labels=False)
        gen.write_split(t / "hidden", split="hidden", sizes=hidden_sizes, seed=seed)

        train = public / "inputs" / "train"
        dl.create(dataset=str(public), path=str(train), result_renderer="disabled")
        shutil.move(t / "train" / "inputs", train / "images")
        shutil.move(t / "train" / "labels", train / "labels")
        test = public / "inputs" / "test"
        dl.create(dataset=str(public), path=str(test), result_renderer="disabled")
        for f in sorted((t / "test" / "inputs").iterdir()):
            shutil.move(f, test / f.name)
        _save(dl, public, "Public training and development data")

        say(f"creating the private dataset {private}")
        dl.create(path=str(private), cfg_proc=["text2git"], result_renderer="disabled")
        for part in ("inputs", "labels"):
            sub = private / "hidden" / "test" / part
            dl.create(dataset=str(private), path=str(sub), result_renderer="disabled")
            for f in sorted((t / "hidden" / part).iterdir()):
                shutil.move(f, sub / f.name)
        save_teams(private, {})
        (private / "README.md").write_text(
            f"# {cid}: organizer-only data\n\nNever publish this dataset. `hidden/<split>/inputs` replace the "
            "public inputs on re-execution; `hidden/<split>/labels` are read by the scorer only.\n"
            "`teams.yaml` lists the teams and their submission repositories (`jc team add`).\n"
        )
        _save(dl, private, "Hidden data and labels")

    say(f"adding the container image {image_file.name}")
    add_container(public, image_file, CONTAINER)
    write_config(config, challenge=public, private=private, results=results)
    say(f"wrote {config}")
    return NewChallenge(public, private, results, config)


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
