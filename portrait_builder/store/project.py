"""A project: a folder with a config file, a store (SQLite by default) and a crop root.

``PROJECT/portrait.yaml`` names the database URL (absent: ``PROJECT/store.sqlite``), the taxonomy file
(absent: the shipped one) and the crop root (default ``PROJECT/crops``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from portrait_builder.errors import UserError
from portrait_builder.store import migrate
from portrait_builder.store.engine import make_engine, retry, writer
from portrait_builder.store.models import Crop, CurrentLabel, Identity, Track, Video
from portrait_builder.taxonomy import Taxonomy, load_taxonomy

CONFIG_NAME = "portrait.yaml"
CONFIG_FORMAT = 1


@dataclass(frozen=True)
class ProjectConfig:
    db_url: str | None = None
    taxonomy: str | None = None
    crop_root: str = "crops"


class Project:
    """An open project. Sessions come from :meth:`session` (reads) and :meth:`write` (one transaction)."""

    def __init__(self, root: Path, config: ProjectConfig, engine: Engine):
        self.root = root
        self.config = config
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._writer_sessions = sessionmaker(writer(engine), expire_on_commit=False)

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def init(cls, root: str | Path, *, db_url: str | None = None, taxonomy: str | Path | None = None) -> Project:
        root = Path(root)
        if (root / CONFIG_NAME).exists():
            raise UserError(f"{root} is already a project (it has {CONFIG_NAME})")
        if taxonomy is not None:
            taxonomy = str(Path(taxonomy).resolve())
            load_taxonomy(taxonomy)  # fail before anything is written
        config = ProjectConfig(db_url=db_url, taxonomy=taxonomy)
        engine = make_engine(_resolve_url(root, config, create_dir=True))
        migrate.upgrade(engine)
        (root / config.crop_root).mkdir(parents=True, exist_ok=True)
        body = {"format": CONFIG_FORMAT, "db_url": db_url, "taxonomy": taxonomy, "crop_root": config.crop_root}
        tmp = root / (CONFIG_NAME + ".tmp")
        tmp.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
        tmp.replace(root / CONFIG_NAME)
        return cls(root, config, engine)

    @classmethod
    def open(cls, root: str | Path, *, require_current: bool = True) -> Project:
        root = Path(root)
        cfg_path = root / CONFIG_NAME
        if not cfg_path.is_file():
            raise UserError(f"no project at {root} (missing {CONFIG_NAME}; create one with `portrait init {root}`)")
        try:
            data = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{cfg_path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
            raise UserError(f"{cfg_path} is not a Portrait Builder project config (format {CONFIG_FORMAT})")
        config = ProjectConfig(
            db_url=data.get("db_url"), taxonomy=data.get("taxonomy"), crop_root=data.get("crop_root") or "crops"
        )
        engine = make_engine(_resolve_url(root, config))
        project = cls(root, config, engine)
        if require_current:
            project.check_current()
        _ = project.taxonomy  # validate the taxonomy on open, not on first label
        return project

    def check_current(self) -> None:
        current, head = migrate.current_revision(self.engine), migrate.head_revision()
        if current != head:
            raise UserError(
                f"the store of {self.root} is at schema revision {current or 'none'}, this version needs {head}; "
                f"run `portrait upgrade {self.root}`"
            )

    def upgrade(self) -> tuple[str | None, str]:
        before = migrate.current_revision(self.engine)
        migrate.upgrade(self.engine)
        return before, migrate.head_revision()

    # -- parts -------------------------------------------------------------------------------
    @cached_property
    def taxonomy(self) -> Taxonomy:
        return load_taxonomy(self.config.taxonomy)

    @property
    def crop_root(self) -> Path:
        return self.root / self.config.crop_root

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        return self._sessions()

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error."""
        with self._writer_sessions() as session, session.begin():
            yield session

    def run_write(self, fn, *, attempts: int = 20):
        """Run ``fn(session)`` in one write transaction, retrying when the store is busy."""

        def once():
            with self.write() as session:
                return fn(session)

        return retry(once, attempts=attempts)

    def close(self) -> None:
        self.engine.dispose()

    # -- reports -----------------------------------------------------------------------------
    def status(self) -> dict:
        with self.session() as s:
            counts = {
                "videos": s.scalar(select(func.count()).select_from(Video)),
                "tracks": s.scalar(select(func.count()).select_from(Track)),
                "crops": s.scalar(select(func.count()).select_from(Crop)),
                "identities": s.scalar(select(func.count()).select_from(Identity)),
            }
            labelled = dict(
                s.execute(
                    select(CurrentLabel.attribute, func.count())
                    .where(CurrentLabel.value.is_not(None))
                    .group_by(CurrentLabel.attribute)
                ).all()
            )
            by_status = dict(s.execute(select(Video.status, func.count()).group_by(Video.status)).all())
        attributes = {
            name: {"labelled": labelled.get(name, 0), "unlabelled": counts["crops"] - labelled.get(name, 0)}
            for name in self.taxonomy.names
        }
        return {
            "project": str(self.root),
            "database": self.engine.url.render_as_string(hide_password=True),
            "schema_revision": migrate.current_revision(self.engine),
            **counts,
            "videos_by_status": by_status,
            "attributes": attributes,
        }


def _resolve_url(root: Path, config: ProjectConfig, *, create_dir: bool = False) -> str:
    if config.db_url:
        return config.db_url
    if create_dir:
        root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'store.sqlite').resolve()}"
