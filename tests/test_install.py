"""The compiled kernels are built at install time, never at run time, and an install without them works.

Both paths are run end to end in subprocesses: the installed extension, and a wheel built with
``CC=false`` (the build skips the optional extension) installed aside, which must give the same
index byte for byte and announce the numpy fallback once.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from provaudit.text import kernels

ROOT = Path(__file__).resolve().parent.parent
POSTS = ROOT / "fixtures" / "reference" / "posts.jsonl"
PROJECT_FILES = ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in")
ANNOUNCE = "provaudit: compiled kernels unavailable ("
needs_extension = pytest.mark.skipif(not kernels.ENABLED, reason=f"compiled kernels unavailable: {kernels.UNAVAILABLE}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 400 reference posts (each subprocess run is short)."""
    path = tmp_path_factory.mktemp("ref") / "posts.jsonl"
    path.write_text("".join(POSTS.read_text(encoding="utf-8").splitlines(keepends=True)[:400]), encoding="utf-8")
    return path


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in ``cwd`` (not the source tree: it would be imported instead of the install)."""
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _index_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _source_copy(dest: Path) -> None:
    """The project as an sdist would hold it (no built extension, no caches)."""
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "provaudit", dest / "provaudit",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))


@needs_extension
def test_extension_is_a_module_inside_the_package() -> None:
    import importlib

    ext = importlib.import_module(kernels.EXTENSION)
    assert Path(ext.__file__).parent == Path(kernels.__file__).parent
    assert ext.ABI == kernels.ABI and sorted(ext.ADDRESSES) == sorted(kernels._SIGNATURES)


def _old_cache_tag() -> str:
    """The name the removed first-import compiler gave its cached library."""
    src = (ROOT / "provaudit" / "text" / "_kernels.c").read_bytes()
    return hashlib.sha256(src + f"{sys.platform}-{platform.machine()}".encode()).hexdigest()[:16]


@needs_extension
def test_a_run_compiles_nothing_and_never_loads_a_library_planted_in_the_old_cache(tmp_path: Path, reference: Path) -> None:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler to build the planted library with")
    home, cache, tmp, bin_ = (tmp_path / d for d in ("home", "cache", "tmp", "bin"))
    for d in (home, cache / "provaudit", tmp, bin_):
        d.mkdir(parents=True)
    marker = tmp_path / "planted-library-was-loaded"
    planted = tmp_path / "planted.c"
    planted.write_text('#include <stdio.h>\n__attribute__((constructor)) static void hit(void) {\n'
                       f'    FILE *f = fopen("{marker}", "w"); if (f) fclose(f);\n}}\n')
    for name in (f"kernels-{_old_cache_tag()}.so", "_kernels.so"):
        subprocess.run([gcc, "-shared", "-fPIC", "-o", str(cache / "provaudit" / name), str(planted)], check=True)
    calls = tmp_path / "compiler-calls"
    for cc in ("cc", "gcc", "clang", "recording-cc"):  # any compiler call is recorded, and fails
        (bin_ / cc).write_text(f'#!/bin/sh\necho "$0 $*" >> "{calls}"\nexit 1\n')
        (bin_ / cc).chmod(0o755)
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(cache), "PROVAUDIT_CACHE": str(cache),
           "TMPDIR": str(tmp), "CC": str(bin_ / "recording-cc"), "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "ref.idx"
    res = _run(["-m", "provaudit", "index", str(reference), "-o", str(out), "-w", "2"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert ANNOUNCE not in res.stderr
    assert not marker.exists()
    assert not calls.exists()
    assert list(tmp.iterdir()) == [] and list(home.iterdir()) == []
    assert sorted(p.name for p in (cache / "provaudit").iterdir()) == sorted(
        [f"kernels-{_old_cache_tag()}.so", "_kernels.so"])
    probe = _run(["-c", "from provaudit.text import kernels; print(kernels.ENABLED)"], env, tmp_path)
    assert probe.stdout == "True\n" and not marker.exists()


def test_install_without_a_compiler_works_on_the_numpy_path(tmp_path: Path, reference: Path) -> None:
    """``CC=false pip wheel`` skips the optional extension; that install gives the same index and says so once."""
    src = tmp_path / "src"
    src.mkdir()
    _source_copy(src)
    env = {**os.environ, "CC": "false"}
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                          str(src)], env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 and ("No matching distribution" in res.stderr or "Could not find" in res.stderr):
        pytest.skip(f"no package index to fetch the build backend from: {res.stderr.strip()[-200:]}")
    assert res.returncode == 0, res.stderr
    (wheel,) = (tmp_path / "dist").glob("provaudit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "provaudit/text/kernels.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd"))]
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {k: v for k, v in os.environ.items() if k != "PROVAUDIT_KERNELS"}
    env["PYTHONPATH"] = str(site)
    where = _run(["-c", "import provaudit.text.kernels as k; print(k.__file__, k.ENABLED)"], env, cwd=tmp_path)
    assert where.stdout == f"{site / 'provaudit' / 'text' / 'kernels.py'} False\n", where.stderr
    fallback = _run(["-m", "provaudit", "index", str(reference), "-o", str(tmp_path / "numpy.idx"), "-w", "2"],
                    env, cwd=tmp_path)
    assert fallback.returncode == 0, fallback.stderr
    announced = [line for line in fallback.stderr.splitlines() if line.startswith(ANNOUNCE)]
    assert announced == [f"{ANNOUNCE}the compiled extension provaudit.text._kernels is not installed (No module "
                         "named 'provaudit.text._kernels')); using the numpy fallback (same results, slower): "
                         "reinstall provaudit where a C compiler works"]
    quiet = _run(["-m", "provaudit", "index", str(reference), "-o", str(tmp_path / "q.idx"), "-q"], env, cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
    version = _run(["-m", "provaudit", "--version"], env, cwd=tmp_path)
    assert version.stderr == "" and version.stdout.startswith("provaudit, version")
    fast = _run(["-m", "provaudit", "index", str(reference), "-o", str(tmp_path / "fast.idx"), "-q"],
                {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, cwd=tmp_path)
    assert fast.returncode == 0, fast.stderr
    assert _index_files(tmp_path / "numpy.idx") == _index_files(tmp_path / "fast.idx")
    assert _index_files(tmp_path / "q.idx") == _index_files(tmp_path / "fast.idx")


def test_sdist_holds_the_c_sources(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    _source_copy(src)
    res = _run(["-c", "import setuptools.build_meta as b, sys; print(b.build_sdist(sys.argv[1]))", str(tmp_path)],
               dict(os.environ), src)
    assert res.returncode == 0, res.stderr
    with tarfile.open(tmp_path / res.stdout.strip().splitlines()[-1]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"setup.py", "provaudit/text/_kernels.c", "provaudit/text/_kernels_module.c"} <= names
