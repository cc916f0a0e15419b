"""The built wheel carries the package, its migrations, schemas/ and pipelines/, and the `portrait` script."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_resources_found_in_source_tree():
    from portrait_builder.resources import pipelines_dir, schemas_dir

    assert (schemas_dir() / "taxonomy.yaml").is_file()
    assert (schemas_dir() / "taxonomy.schema.json").is_file()
    assert (pipelines_dir() / "ingest.yaml").is_file()


@pytest.mark.slow
def test_wheel_installs_and_finds_its_resources(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(dist.glob("portrait_builder-*.whl"))
    env_dir = tmp_path / "venv"
    # The running environment's site-packages give the new venv the heavy dependencies (torch, Qt)
    # without a download: a .pth line appends that folder after the venv's own site-packages, so the
    # package itself comes from the wheel. (system_site_packages would name the base interpreter's
    # folder, which lacks them when the tests run inside a virtual environment.)
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    own_site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    Path(own_site, "_running_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    probe = (
        "import portrait_builder, json\n"
        "from portrait_builder.resources import schemas_dir, pipelines_dir\n"
        "from portrait_builder.taxonomy import load_taxonomy\n"
        "from portrait_builder.store.migrate import head_revision\n"
        "print(json.dumps([portrait_builder.__file__, str(schemas_dir()), str(pipelines_dir()),"
        " len(load_taxonomy().names), head_revision()]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(py), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    import json

    pkg_file, schemas, pipelines, n_attrs, head = json.loads(out.stdout)
    assert Path(pkg_file).is_relative_to(env_dir), pkg_file
    assert Path(schemas).is_relative_to(env_dir) and Path(pipelines).is_relative_to(env_dir)
    assert n_attrs == 8 and head
    # the console script works from the wheel: init a project with the packaged migrations
    code = subprocess.run([str(env_dir / "bin" / "portrait"), "init", str(tmp_path / "proj")], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert code.returncode == 0, code.stderr
    assert (tmp_path / "proj" / "store.sqlite").is_file()
