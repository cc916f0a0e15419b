"""A project: a folder with a config file, a store (SQLite by default) and a crop root.

``PROJECT/portrait.yaml`` names the database URL (absent: ``PROJECT/store.sqlite``), the taxonomy file
(absent: the shipped one) and the crop root (default ``PROJECT/crops``). The file is shared with
everyone who has the project folder, so it never holds a database password.

Per machine, two environment variables override it: ``PORTRAIT_CROP_ROOT`` (where this machine mounts
the team's crops folder; the store keeps paths relative to it) and ``PORTRAIT_DB_USER`` (the login to
connect as, when the URL names another user). A SQLite project is single-workstation: its folder,
store and crops are created readable by the owner only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml
from sqlalchemy import func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from portrait_builder.common import atomic_write
from portrait_builder.errors import UserError
from portrait_builder.store import migrate, security
from portrait_builder.store.engine import make_engine, retry, writer
from portrait_builder.store.models import Identity, Setting, StoreCount, Track, Video
from portrait_builder.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

CONFIG_NAME = "portrait.yaml"
CONFIG_FORMAT = 1
CROP_ROOT_ENV = "PORTRAIT_CROP_ROOT"
DB_USER_ENV = "PORTRAIT_DB_USER"
OWNER_ONLY_DIR, OWNER_ONLY_FILE = 0o700, 0o600


class StorePermissionError(UserError):
    """The database refused a write (or read) this login has no right to."""


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
        self._login: security.Login | None = None

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def init(cls, root: str | Path, *, db_url: str | None = None, taxonomy: str | Path | None = None) -> Project:
        root = Path(root)
        if (root / CONFIG_NAME).exists():
            raise UserError(f"{root} is already a project (it has {CONFIG_NAME})")
        if db_url:
            security.refuse_password(db_url, f"{root / CONFIG_NAME}")
        if taxonomy is not None:
            taxonomy = str(Path(taxonomy).resolve())
            load_taxonomy(taxonomy)  # fail before anything is written
        config = ProjectConfig(db_url=db_url, taxonomy=taxonomy)
        single_user = not db_url
        made_root = single_user and not root.exists()
        if made_root:
            root.mkdir(parents=True, mode=OWNER_ONLY_DIR)
        engine = make_engine(_resolve_url(root, config, create_dir=True))
        migrate.upgrade(engine)
        crops = root / config.crop_root
        crops.mkdir(parents=True, exist_ok=True)
        body = {"format": CONFIG_FORMAT, "db_url": db_url, "taxonomy": taxonomy, "crop_root": config.crop_root}
        _write_config(root, body)
        project = cls(root, config, engine)
        if single_user:
            # One workstation, one person: nobody else on the machine reads the labels or the crops.
            # A folder that existed before keeps its mode (it may be the user's own, e.g. `portrait init .`).
            for path in (root, crops) if made_root else (crops,):
                path.chmod(OWNER_ONLY_DIR)
            for path in root.glob("store.sqlite*"):
                path.chmod(OWNER_ONLY_FILE)
            (root / CONFIG_NAME).chmod(OWNER_ONLY_FILE)
        else:
            project.record_identity_attribute()
        return project

    @classmethod
    def open(cls, root: str | Path, *, require_current: bool = True) -> Project:
        root = Path(root)
        cfg_path = root / CONFIG_NAME
        data = read_config(root)
        config = ProjectConfig(
            db_url=data.get("db_url"), taxonomy=data.get("taxonomy"), crop_root=data.get("crop_root") or "crops"
        )
        if config.db_url and security.url_password(config.db_url):
            log.warning("%s holds a database password; remove it with `portrait doctor %s --repair`", cfg_path, root)
        url = _resolve_url(root, config)
        user = os.environ.get(DB_USER_ENV)
        if user and config.db_url:  # another person's password (an old config) is not sent for this login
            url = make_url(url).set(username=user)._replace(password=None).render_as_string(hide_password=False)
        engine = make_engine(url)
        project = cls(root, config, engine)
        if require_current:
            with project.refusals():  # a login without rights on this store fails here, in one line
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
        """This machine's crops folder: ``PORTRAIT_CROP_ROOT`` when set, else the config's (relative to the project)."""
        override = os.environ.get(CROP_ROOT_ENV)
        if override:
            return Path(override).expanduser()
        return self.root / self.config.crop_root

    def check_crop_root(self) -> Path:
        """The crops folder, or one line saying it is missing (an unmounted shared drive)."""
        root = self.crop_root
        if not root.is_dir():
            how = (f"{CROP_ROOT_ENV} names it" if os.environ.get(CROP_ROOT_ENV)
                   else f"set {CROP_ROOT_ENV} to where this machine mounts it")
            raise UserError(f"the crops folder {root} is missing: is the shared drive mounted? ({how})")
        return root

    @property
    def login(self) -> security.Login | None:
        """Who this project's connections are on PostgreSQL (None on SQLite)."""
        if self.is_sqlite:
            return None
        if self._login is None:
            with self.engine.connect() as conn:
                self._login = security.current_login(conn)
        return self._login

    def record_identity_attribute(self) -> None:
        """Tell the row-level security policies which attribute is the taxonomy's identity (PostgreSQL)."""
        name = next((a.name for a in self.taxonomy.attributes if a.kind == "identity"), None)
        if self.is_sqlite or name is None:
            return

        def tx(s: Session) -> None:
            row = s.get(Setting, security.IDENTITY_ATTRIBUTE_SETTING)
            if row is None:
                s.add(Setting(key=security.IDENTITY_ATTRIBUTE_SETTING, value=name))
            elif row.value != name:
                row.value = name

        self.run_write(tx)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        return self._sessions()

    @contextlib.contextmanager
    def refusals(self) -> Iterator[None]:
        """Turn the database's refusal of a right (PostgreSQL roles, row-level security) into one line."""
        try:
            yield
        except DBAPIError as exc:
            login = self.login.name if self.login is not None else None  # catalog reads: always allowed
            message = security.refusal_message(exc, login)
            if message is None:
                raise
            raise StorePermissionError(message) from None

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error."""
        with self.refusals(), self._writer_sessions() as session, session.begin():
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
        """What the project holds. Crops and labelled crops per attribute come from ``store_counts``
        (kept by triggers, revision 0005): a few rows instead of counting millions of rows per call."""
        with self.session() as s:
            kept = dict(s.execute(select(StoreCount.counter, func.sum(StoreCount.n)).group_by(StoreCount.counter)).all())
            counts = {
                "videos": s.scalar(select(func.count()).select_from(Video)),
                "tracks": s.scalar(select(func.count()).select_from(Track)),
                "crops": int(kept.get("crops") or 0),
                "identities": s.scalar(select(func.count()).select_from(Identity)),
            }
            by_status = dict(s.execute(select(Video.status, func.count()).group_by(Video.status)).all())
            revision = migrate.current_revision(s.connection())
        attributes = {}
        for name in self.taxonomy.names:
            labelled = int(kept.get(f"labelled:{name}") or 0)
            attributes[name] = {"labelled": labelled, "unlabelled": counts["crops"] - labelled}
        return {
            "project": str(self.root),
            "database": security.mask_url(self.engine.url.render_as_string(hide_password=False)),
            "schema_revision": revision,
            "login": self.login.name if self.login is not None else None,  # who this machine connects as
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


def read_config(root: Path) -> dict:
    """The parsed ``portrait.yaml`` of a project (UserError when missing or not a project config)."""
    cfg_path = root / CONFIG_NAME
    if not cfg_path.is_file():
        raise UserError(f"no project at {root} (missing {CONFIG_NAME}; create one with `portrait init {root}`)")
    try:
        data = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{cfg_path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
        raise UserError(f"{cfg_path} is not a Portrait Builder project config (format {CONFIG_FORMAT})")
    return data


def _write_config(root: Path, body: dict) -> None:
    """Replace ``portrait.yaml`` atomically, keeping its permission bits."""
    target = root / CONFIG_NAME
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else None

    def write(tmp: Path) -> None:
        tmp.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
        if mode is not None:
            tmp.chmod(mode)

    atomic_write(target, write)


def config_secrets(root: str | Path, *, repair: bool = False) -> dict:
    """Check ``portrait.yaml`` for a database password; with ``repair``, rewrite it without one.

    Returns ``{"config": path, "password_in_config": bool, "removed": bool}``; never the password.
    """
    root = Path(root)
    data = read_config(root)
    url = data.get("db_url")
    found = bool(url) and security.url_password(url) is not None
    removed = False
    if found and repair:
        _write_config(root, {**data, "db_url": security.strip_password(url)})
        removed = True
        log.info("removed the database password from %s", root / CONFIG_NAME)
    return {"config": str(root / CONFIG_NAME), "password_in_config": found, "removed": removed}
