"""Build meshfit's OCI image without a container daemon and without a base image.

    python hack/image/build.py            # `make image`: build/image/{oci/,meshfit-VERSION.tar,digest}
    python hack/image/build.py lock       # refresh debian.lock and requirements.lock

The root filesystem is assembled from three sources, one layer each, so a
registry stores the two slow-moving ones once:

1. **base**: Debian 12 packages (``debian.lock``: name, version, sha256) fetched
   with ``apt-get download`` and unpacked with ``dpkg-deb -x`` — the Python
   runtime and the shared libraries the wheels link, trimmed of documentation,
   every program but ``python3.11`` (no shell, no package manager, no
   compilers), plus ``/etc/passwd`` with the non-root user 65532 and a CA bundle;
2. **deps**: meshfit's dependencies at the versions and hashes of
   ``requirements.lock`` (manylinux wheels for CPython 3.11);
3. **app**: meshfit's own wheel, built from this checkout, and ``/usr/bin/meshfit``.

Every ``.py`` is compiled to an unchecked-hash ``.pyc`` by the image's own
interpreter (run through the image's dynamic loader, so no chroot is needed),
so a read-only root filesystem starts as fast as a writable one.

Reproducible: tar entries sorted, owners 0:0 (the home directory 65532), modes
normalised, every mtime fixed — the base and deps layers to the ``epoch`` line
of their lock file (so they do not change from commit to commit), the app layer
and the config's ``created`` to ``SOURCE_DATE_EPOCH`` (default: the commit's
time). gzip runs with mtime 0 and no file name. What is not reproducible is
listed in hack/image/README.md.

The base and deps layers are cached under ``~/.cache/meshfit/image/`` by the
hash of their inputs, downloads too; a warm build does only the app layer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEBIAN_LOCK = HERE / "debian.lock"
REQUIREMENTS_LOCK = HERE / "requirements.lock"
OUT = REPO / "build" / "image"
CACHE = Path(os.environ.get("MESHFIT_CACHE") or Path.home() / ".cache" / "meshfit").expanduser() / "image"

#: The Debian packages of the base layer. Dependencies are listed explicitly (no
#: resolver): the ones libpython3.11-stdlib declares for modules meshfit never
#: imports (sqlite3, readline, curses, dbm, nis) are left out, and so are those
#: modules' extension files.
DEBIAN_PACKAGES = (
    "libc6", "libgcc-s1", "libstdc++6", "libssl3", "zlib1g", "libexpat1", "libffi8", "libbz2-1.0",
    "liblzma5", "libcrypt1", "libuuid1", "python3.11-minimal", "libpython3.11-minimal",
    "libpython3.11-stdlib", "media-types", "netbase", "ca-certificates",
    # Only the copyright file libgcc-s1's and libstdc++6's documentation links to.
    "gcc-12-base",
)
PYTHON = "python3.11"
#: The wheels' target: Debian 12's glibc is 2.36, so every manylinux_2_N tag up to N = 36 fits.
WHEEL_PLATFORM = [*(a for i in range(36, 4, -1) for a in ("--platform", f"manylinux_2_{i}_x86_64")),
                  "--python-version", "3.11",
                  "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
                  "--only-binary=:all:"]
EXTRAS = "speed"

USER = 65532
IMAGE_NAME = "meshfit/meshfit"

#: Removed from the unpacked packages: documentation, programs, and stdlib parts
#: nobody runs in a server image. Paths are relative to the root; a trailing ``/``
#: is a directory.
TRIM = (
    "usr/share/man/", "usr/share/info/", "usr/share/lintian/", "usr/share/locale/",
    "usr/share/bug/", "usr/share/gcc/", "usr/share/gdb/", "usr/share/binfmts/", "usr/share/pixmaps/",
    "usr/share/applications/", "usr/share/python3/", "usr/share/menu/",
    "usr/bin/", "usr/sbin/", "sbin/", "bin/", "usr/libexec/", "usr/lib/x86_64-linux-gnu/gconv/",
    "usr/lib/x86_64-linux-gnu/audit/", "etc/ca-certificates.conf", "etc/ca-certificates/",
    "usr/lib/python3.11/test/", "usr/lib/python3.11/idlelib/", "usr/lib/python3.11/tkinter/",
    "usr/lib/python3.11/turtledemo/", "usr/lib/python3.11/ensurepip/", "usr/lib/python3.11/lib2to3/",
    "usr/lib/python3.11/pydoc_data/", "usr/lib/python3.11/sqlite3/", "usr/lib/python3.11/curses/",
    "usr/lib/python3.11/dbm/", "usr/lib/python3.11/turtle.py",
    # Debian's hook for apport, which is not here; the symlink points out of the tree.
    "usr/lib/python3.11/sitecustomize.py", "etc/python3.11/", "usr/lib/python3.11/config-3.11-x86_64-linux-gnu/",
)
#: Extension modules whose libraries are not in the base (see DEBIAN_PACKAGES).
TRIM_DYNLOAD = ("_sqlite3", "readline", "_curses", "_curses_panel", "_dbm", "_gdbm", "nis", "_tkinter")
#: Kept from usr/bin/.
KEEP_PROGRAMS = (f"usr/bin/{PYTHON}",)


def log(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kwargs)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


# --- lock files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    epoch: int
    entries: list[tuple[str, str, str]]  # name, version, sha256


def read_lock(path: Path) -> Lock:
    """``# epoch: N`` then one ``name version sha256`` (Debian) or pip line per entry."""
    epoch = None
    entries: list[tuple[str, str, str]] = []
    for line in path.read_text().splitlines():
        if m := re.match(r"#\s*epoch:\s*(\d+)", line):
            epoch = int(m.group(1))
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if m := re.match(r"([A-Za-z0-9_.+-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})$", line):
            entries.append((m.group(1), m.group(2), m.group(3)))
        elif len(parts := line.split()) == 3:
            entries.append((parts[0], parts[1], parts[2]))
        else:
            raise SystemExit(f"{path}: cannot read {line!r}")
    if epoch is None:
        raise SystemExit(f"{path}: no '# epoch: N' line")
    return Lock(epoch, entries)


def lock(now: int) -> None:
    """Pin the Debian packages apt offers now and the wheels pip resolves now."""
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in DEBIAN_PACKAGES:
        version = subprocess.run(["apt-cache", "policy", name], check=True, capture_output=True,
                                 text=True).stdout
        m = re.search(r"Candidate:\s*(\S+)", version)
        if not m or m.group(1) == "(none)":
            raise SystemExit(f"apt has no candidate for {name}: run apt-get update (Debian 12 sources)")
        path = fetch_deb(name, m.group(1), None)
        lines.append(f"{name} {m.group(1)} {sha256_file(path)}")
    DEBIAN_LOCK.write_text(
        "# Debian 12 (bookworm) packages of the image's base layer: name, version, sha256 of the .deb.\n"
        "# Written by `python hack/image/build.py lock`; the epoch is the base layer's mtime.\n"
        f"# epoch: {now}\n" + "\n".join(lines) + "\n")
    log(f"wrote {DEBIAN_LOCK.relative_to(REPO)} ({len(lines)} packages)")

    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp))
        report = Path(tmp) / "report.json"
        run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
             "--report", str(report), "--target", str(Path(tmp) / "t"), *WHEEL_PLATFORM,
             "--find-links", str(wheel.parent), f"meshfit[{EXTRAS}]"])
        items = json.loads(report.read_text())["install"]
    reqs = []
    for item in sorted(items, key=lambda i: i["metadata"]["name"].lower()):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name == "meshfit":
            continue
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        reqs.append(f"{name}=={version} --hash=sha256:{digest}")
    REQUIREMENTS_LOCK.write_text(
        "# meshfit's runtime dependencies (and the [speed] extra) as installed in the image:\n"
        "# manylinux wheels for CPython 3.11 on glibc 2.36 (Debian 12), one hash each.\n"
        "# Written by `python hack/image/build.py lock`; the epoch is the deps layer's mtime.\n"
        f"# epoch: {now}\n" + "\n".join(reqs) + "\n")
    log(f"wrote {REQUIREMENTS_LOCK.relative_to(REPO)} ({len(reqs)} wheels)")


# --- inputs -----------------------------------------------------------------------------------


_APT_UPDATED: list[bool] = []


def fetch_deb(name: str, version: str, sha256: str | None) -> Path:
    """The cached .deb of ``name=version``, downloaded by ``apt-get download`` if missing."""
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    quoted = version.replace(":", "%3a")
    found = [p for p in debs.glob(f"{name}_{quoted}_*.deb")]
    if not found:
        log(f"apt-get download {name}={version}")
        done = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs,
                              capture_output=True, text=True)
        if done.returncode and os.geteuid() == 0 and not _APT_UPDATED:
            # A fresh machine (a CI image) often has no package lists yet.
            log("apt-get update (once: the package lists are missing or old)")
            subprocess.run(["apt-get", "update", "-qq"], check=False)
            _APT_UPDATED.append(True)
            done = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs,
                                  capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(
                f"apt-get download {name}={version} failed:\n{done.stderr.strip()}\n"
                "run `apt-get update` once (Debian 12 sources); if the version is gone from the "
                "archive (a point release replaced it), refresh the pins: python hack/image/build.py lock")
        found = list(debs.glob(f"{name}_{quoted}_*.deb"))
    path = found[0]
    if sha256 and sha256_file(path) != sha256:
        path.unlink()
        raise SystemExit(f"{path.name}: sha256 differs from debian.lock; deleted it, run again")
    return path


def fetch_wheels(lock_file: Path) -> Path:
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
         "-r", str(lock_file), "-d", str(wheels), *WHEEL_PLATFORM])
    return wheels


def build_wheel(out: Path) -> Path:
    """meshfit's wheel from this checkout (pip's cache supplies setuptools).

    Built from a copy of the files git knows (tracked, or untracked and not
    ignored): setuptools reuses ``build/lib`` in the source directory, where a
    module deleted from the tree would live on and be packaged.
    """
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("meshfit-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "meshfit"
        listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
        if not listed:
            raise SystemExit("cannot list the checkout's files with git")
        for rel in sorted(set(listed.strip("\0").split("\0"))):
            origin, copy = REPO / rel, src / rel
            if not origin.is_symlink() and not origin.exists():
                continue  # deleted in the work tree, not yet in the index
            copy.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_symlink():
                copy.symlink_to(os.readlink(origin))
            else:
                shutil.copy2(origin, copy)
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(src)],
            env={**os.environ, "SOURCE_DATE_EPOCH": str(source_date_epoch())})
    (wheel,) = out.glob("meshfit-*.whl")
    return wheel


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct")
    return int(value) if value else 0


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


# --- root filesystems -------------------------------------------------------------------------


def trim(root: Path) -> None:
    # Documentation goes, but each package's copyright file stays: it is the licence
    # notice that must travel with the binaries.
    doc = root / "usr/share/doc"
    for path in sorted(doc.rglob("*"), reverse=True):
        if path.name == "copyright" and not path.is_symlink():
            continue
        if path.parent == doc and path.is_symlink():
            continue  # libstdc++6 -> gcc-12-base: the package's notice is its target's
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    keep = {root / p: (root / p).read_bytes() for p in KEEP_PROGRAMS if (root / p).exists()}
    modes = {p: p.stat().st_mode for p in keep}
    for rel in TRIM:
        path = root / rel.rstrip("/")
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    for path, data in keep.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(modes[path])
    dynload = root / "usr/lib/python3.11/lib-dynload"
    for so in dynload.glob("*.so"):
        if so.name.split(".", 1)[0] in TRIM_DYNLOAD:
            so.unlink()
    # Programs the libraries' packages ship next to them (ldconfig, iconvconfig, ...).
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix in (".pl", ".sh"):
            path.unlink()


def image_python(base: Path, *args: str) -> list[str]:
    """Run the base layer's interpreter on this machine through the base's own loader."""
    return [str(base / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), "--library-path",
            f"{base}/lib/x86_64-linux-gnu:{base}/usr/lib/x86_64-linux-gnu",
            str(base / "usr/bin" / PYTHON), "-s", *args]


def compile_tree(base: Path, layer: Path, *dirs: str, legacy: bool = False) -> None:
    """Unchecked-hash .pyc next to every .py, recording image paths (``/usr/...``)."""
    targets = [str(layer / d) for d in dirs if (layer / d).is_dir()]
    env = {"PYTHONHOME": str(base / "usr"), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
    # One process (-j 1): marshal's output can depend on the compiling process's
    # history, and a single process in sorted order gives the same bytes every time.
    run(image_python(base, "-m", "compileall", "-q", "-j", "1", "--invalidation-mode", "unchecked-hash",
                     *(["-b"] if legacy else []), "-s", str(layer), "-p", "/", *targets),
        env=env, stdout=subprocess.DEVNULL)


def write_base_files(root: Path) -> None:
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                f"nonroot:x:{USER}:{USER}:nonroot:/home/nonroot:/usr/sbin/nologin\n")
    (etc / "group").write_text(f"root:x:0:\nnonroot:x:{USER}:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    (etc / "os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm), meshfit runtime"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')
    certs = sorted((root / "usr/share/ca-certificates").rglob("*.crt"))
    bundle = etc / "ssl/certs/ca-certificates.crt"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_bytes(b"".join(p.read_bytes().rstrip(b"\n") + b"\n" for p in certs))
    # dev, proc and sys: mount points a runtime fills, present even when the root is read-only.
    for d in ("tmp", "home/nonroot", "root", "dev", "proc", "sys"):
        (root / d).mkdir(parents=True, exist_ok=True)


def build_base(lock_: Lock) -> Path:
    """The Debian root filesystem, unpacked, trimmed and compiled; cached by its inputs."""
    key = sha256_text(DEBIAN_LOCK.read_text(), Path(__file__).read_text())[:16]
    done = CACHE / f"base-{key}"
    if (done / "rootfs").is_dir():
        return done / "rootfs"
    log(f"base layer: {len(lock_.entries)} Debian packages")
    staging = Path(tempfile.mkdtemp(dir=CACHE, prefix=".base-"))
    root = staging / "rootfs"
    root.mkdir()
    status = []
    for name, version, sha in lock_.entries:
        deb = fetch_deb(name, version, sha)
        run(["dpkg-deb", "-x", str(deb), str(root)])
        status.append(subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True,
                                     text=True).stdout.rstrip("\n"))
    trim(root)
    # `python3`, as exec probes and people type it (manifests/extender/second-scheduler.yaml).
    (root / "usr/bin/python3").symlink_to(PYTHON)
    write_base_files(root)
    # What scanners (trivy, grype, syft) read to know the image's Debian packages.
    status_dir = root / "var/lib/dpkg/status.d"
    status_dir.mkdir(parents=True)
    for (name, _, _), control in zip(lock_.entries, status):
        (status_dir / name).write_text(control + "\nStatus: install ok installed\n")
    compile_tree(root, root, "usr/lib/python3.11")
    shutil.rmtree(done, ignore_errors=True)
    staging.rename(done)
    return done / "rootfs"


def pip_target(wheels: Iterable[str], target: Path, *extra: str) -> None:
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--no-index",
         "--disable-pip-version-check", "--target", str(target), *WHEEL_PLATFORM, *extra, *wheels])
    shutil.rmtree(target / "bin", ignore_errors=True)


SITE = "usr/lib/python3/dist-packages"
#: kubernetes 37's asyncio client (68 MB): meshfit talks to the apiserver through
#: its own aiohttp client (kube/) and uses the kubernetes package only for its
#: kubeconfig and in-cluster loaders, which never import it.
SITE_TRIM = ("kubernetes/aio/",)
#: Shipped as bytecode only (``module.pyc`` where ``module.py`` was): the generated
#: API and model classes are 33 MB of source that ``import kubernetes`` loads but
#: meshfit never calls; a traceback through them shows no source line.
SOURCELESS = ("kubernetes/client/api", "kubernetes/client/models")


def build_deps(base: Path, lock_: Lock) -> Path:
    key = sha256_text(REQUIREMENTS_LOCK.read_text(), Path(__file__).read_text(), str(base))[:16]
    done = CACHE / f"deps-{key}"
    if (done / "rootfs").is_dir():
        return done / "rootfs"
    log(f"deps layer: {len(lock_.entries)} wheels")
    wheels = fetch_wheels(REQUIREMENTS_LOCK)
    staging = Path(tempfile.mkdtemp(dir=CACHE, prefix=".deps-"))
    root = staging / "rootfs"
    site = root / SITE
    pip_target(["--find-links", str(wheels), "--require-hashes", "-r", str(REQUIREMENTS_LOCK)], site)
    for rel in SITE_TRIM:
        shutil.rmtree(site / rel)
    for rel in SOURCELESS:
        compile_tree(base, root, f"{SITE}/{rel}", legacy=True)
        for py in (site / rel).rglob("*.py"):
            py.unlink()
        shutil.rmtree(site / rel / "__pycache__", ignore_errors=True)
    compile_tree(base, root, SITE)
    shutil.rmtree(done, ignore_errors=True)
    staging.rename(done)
    return done / "rootfs"


def build_app(base: Path, wheel: Path, work: Path) -> Path:
    root = work / "app"
    shutil.rmtree(root, ignore_errors=True)
    pip_target([str(wheel)], root / SITE)
    # pip records where the wheel was (a path of this machine) in direct_url.json.
    dist_info = next((root / SITE).glob("meshfit-*.dist-info"))
    (dist_info / "direct_url.json").unlink(missing_ok=True)
    record = dist_info / "RECORD"
    record.write_text("".join(line for line in record.read_text().splitlines(keepends=True)
                              if "/direct_url.json," not in line))
    script = root / "usr/bin/meshfit"
    script.parent.mkdir(parents=True)
    script.write_text(f"#!/usr/bin/{PYTHON}\nimport sys\n\nfrom cli.main import main\n\nsys.exit(main())\n")
    script.chmod(0o755)
    compile_tree(base, root, SITE)
    return root


# --- layers and the OCI layout ----------------------------------------------------------------


def tar_entries(root: Path) -> Iterator[Path]:
    """Every path under ``root``, parents before children, byte-sorted."""
    stack = [root]
    out: list[Path] = []
    while stack:
        d = stack.pop()
        for entry in os.scandir(d):
            p = Path(entry.path)
            out.append(p)
            if entry.is_dir(follow_symlinks=False):
                stack.append(p)
    yield from sorted(out, key=lambda p: p.relative_to(root).as_posix().encode())


def normalised(info: tarfile.TarInfo, st: os.stat_result, epoch: int) -> tarfile.TarInfo:
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isdir():
        info.mode = 0o755
    elif info.issym():
        info.mode = 0o777
    else:
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644  # setuid and setgid bits never survive
    if info.name in ("tmp",):
        info.mode = 0o1777
    if info.name == "home/nonroot":
        info.uid = info.gid = USER
    if info.name == "root":
        info.mode = 0o700
    return info


def write_layer(root: Path, epoch: int, out: Path) -> tuple[str, str, int]:
    """A gzipped tar of ``root``; returns (sha256 of the gzip, sha256 of the tar = diff_id, tar size)."""
    raw = hashlib.sha256()
    size = 0

    class Tee(io.RawIOBase):
        def __init__(self, sink):
            self.sink = sink

        def writable(self):
            return True

        def tell(self):
            return size

        def write(self, b):
            nonlocal size
            raw.update(b)
            size += len(b)
            return self.sink.write(b)

    with out.open("wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=6) as gz:
        tee = Tee(gz)
        with tarfile.open(fileobj=tee, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in tar_entries(root):
                rel = path.relative_to(root).as_posix()
                st = path.lstat()
                info = tarfile.TarInfo(rel)
                if stat.S_ISLNK(st.st_mode):
                    info.type = tarfile.SYMTYPE
                    info.linkname = os.readlink(path)
                elif stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                elif stat.S_ISREG(st.st_mode):
                    info.size = st.st_size
                else:
                    raise SystemExit(f"{path}: not a file, directory or symlink")
                info = normalised(info, st, epoch)
                if info.isreg():
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
    return sha256_file(out), "sha256:" + raw.hexdigest(), size


def put_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs/sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return "sha256:" + digest, len(data)


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build(args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    epoch = source_date_epoch()
    version = project_version()
    revision = git("rev-parse", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    source = os.environ.get("IMAGE_SOURCE") or git("remote", "get-url", "origin") or "https://github.com/meshfit/meshfit"
    tag = os.environ.get("IMAGE_TAG") or version
    CACHE.mkdir(parents=True, exist_ok=True)
    deb_lock, req_lock = read_lock(DEBIAN_LOCK), read_lock(REQUIREMENTS_LOCK)

    out = Path(args.out)
    # A clean work tree at a commit already built: nothing to do (make test runs this every time).
    clean = bool(git("rev-parse", "HEAD")) and not git("status", "--porcelain")
    stamp = sha256_text(revision, str(epoch), tag, source, Path(__file__).read_text(), DEBIAN_LOCK.read_text(),
                        REQUIREMENTS_LOCK.read_text(), str(out.resolve()))
    stamp_file = out / "stamp"
    if clean and not args.force and stamp_file.exists() and stamp_file.read_text() == stamp \
            and (out / "digest").exists() and (out / "oci/index.json").exists():
        digest = (out / "digest").read_text().strip()
        log(f"up to date: {IMAGE_NAME}:{tag} {digest} (commit {revision[:12]}); --force rebuilds")
        print(digest)
        return
    stamp_file.unlink(missing_ok=True)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(work / "wheel")
    base = build_base(deb_lock)
    deps = build_deps(base, req_lock)
    app = build_app(base, wheel, work)

    layout = out / "oci"
    shutil.rmtree(layout, ignore_errors=True)
    (layout / "blobs/sha256").mkdir(parents=True)
    layers, diff_ids, history, uncompressed = [], [], [], 0
    for name, root, layer_epoch, what in (
        ("base", base, deb_lock.epoch, f"Debian 12 packages of {DEBIAN_LOCK.name}, trimmed, compiled"),
        ("deps", deps, req_lock.epoch, f"wheels of {REQUIREMENTS_LOCK.name} into /{SITE}"),
        ("app", app, epoch, f"meshfit {version} ({wheel.name}) and /usr/bin/meshfit"),
    ):
        cached = CACHE / f"layer-{name}-{sha256_text(str(root), str(layer_epoch))[:16]}.tar.gz" \
            if name != "app" else work / "app.tar.gz"
        meta = cached.with_suffix(".json")
        if name != "app" and cached.exists() and meta.exists():
            digest, diff_id, size = json.loads(meta.read_text())
        else:
            digest, diff_id, size = write_layer(root, layer_epoch, cached)
            meta.write_text(json.dumps([digest, diff_id, size]))
        shutil.copyfile(cached, layout / "blobs/sha256" / digest)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": "sha256:" + digest, "size": cached.stat().st_size})
        diff_ids.append(diff_id)
        history.append({"created": iso(layer_epoch), "created_by": f"hack/image/build.py: {what}"})
        uncompressed += size
        log(f"layer {name}: {cached.stat().st_size / 1e6:.1f} MB gzip, {size / 1e6:.1f} MB tar")

    labels = {
        "org.opencontainers.image.title": "meshfit",
        "org.opencontainers.image.description": "meshfit: the sidecar-injecting admission webhook, the "
                                                "kube-scheduler extender and the fleet controller (one image; "
                                                "the subcommand chooses)",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": source,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.created": iso(epoch),
        "org.opencontainers.image.base.name": "debian:12 packages (hack/image/debian.lock), no base image",
    }
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": iso(epoch),
        "config": {
            "User": f"{USER}:{USER}",
            "Entrypoint": ["/usr/bin/meshfit"],
            "Cmd": ["--help"],
            "Env": ["PATH=/usr/bin", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1",
                    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "HOME=/home/nonroot"],
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_digest, config_size = put_blob(layout, canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": config_size},
        "layers": layers,
        "annotations": {k: v for k, v in labels.items() if k.endswith((".version", ".revision", ".source",
                                                                          ".created"))},
    }
    manifest_digest, manifest_size = put_blob(layout, canonical(manifest))
    ref = f"docker.io/{IMAGE_NAME}:{tag}"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": manifest_size, "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"org.opencontainers.image.ref.name": tag,
                                       "io.containerd.image.name": ref}}],
    }
    (layout / "index.json").write_bytes(canonical(index))
    (layout / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))

    # `docker load` reads manifest.json (older dockers) or index.json (25+); the
    # tarball carries both, with the layout's blobs, as `docker save` does since 25.
    docker_manifest = [{"Config": "blobs/sha256/" + config_digest.split(":")[1],
                        "RepoTags": [f"{IMAGE_NAME}:{tag}"],
                        "Layers": ["blobs/sha256/" + layer["digest"].split(":")[1] for layer in layers]}]
    tarball = out / f"meshfit-{tag}.tar"
    with tarfile.open(tarball, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes | None = None, path: Path | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = epoch, 0o644
            if path is not None:
                info.size = path.stat().st_size
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for d in ("blobs", "blobs/sha256"):
            dir_info = tarfile.TarInfo(d)
            dir_info.type, dir_info.mode, dir_info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(dir_info)
        for blob in sorted((layout / "blobs/sha256").iterdir()):
            add(f"blobs/sha256/{blob.name}", path=blob)
        add("index.json", (layout / "index.json").read_bytes())
        add("manifest.json", json.dumps(docker_manifest).encode())
        add("oci-layout", (layout / "oci-layout").read_bytes())

    (out / "digest").write_text(manifest_digest + "\n")
    prune_cache(keep={base.parent.name, deps.parent.name,
                      *(f"layer-{n}-{sha256_text(str(r), str(e))[:16]}.tar{s}"
                        for n, r, e in (("base", base, deb_lock.epoch), ("deps", deps, req_lock.epoch))
                        for s in (".gz", ".json"))})
    if clean:
        stamp_file.write_text(stamp)
    (out / "image.json").write_text(json.dumps({
        "reference": f"{IMAGE_NAME}:{tag}", "digest": manifest_digest, "config": config_digest,
        "uncompressed_bytes": uncompressed, "compressed_bytes": sum(layer["size"] for layer in layers),
        "layout": str(layout), "tarball": str(tarball), "source_date_epoch": epoch,
    }, indent=2) + "\n")
    log(f"{IMAGE_NAME}:{tag} {manifest_digest}: {uncompressed / 1e6:.1f} MB uncompressed, "
        f"{sum(layer['size'] for layer in layers) / 1e6:.1f} MB compressed, in {time.monotonic() - t0:.0f} s")
    log(f"OCI layout {layout.relative_to(REPO) if layout.is_relative_to(REPO) else layout} "
        f"(ref {tag}); docker load -i {tarball.relative_to(REPO) if tarball.is_relative_to(REPO) else tarball}")
    print(manifest_digest)


def prune_cache(keep: set[str]) -> None:
    """Drop the unpacked trees and layers of earlier inputs (a lock or build.py change); downloads stay."""
    for path in CACHE.iterdir():
        if path.name.startswith(("base-", "deps-", "layer-")) and path.name not in keep:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=("build", "lock"), default="build")
    parser.add_argument("--out", default=str(OUT), help="output directory (default build/image)")
    parser.add_argument("--force", action="store_true", help="build even if the stamp says the commit is built")
    args = parser.parse_args()
    if args.action == "lock":
        lock(int(time.time()))
    else:
        build(args)


if __name__ == "__main__":
    main()
