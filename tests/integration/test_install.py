# `make install DESTDIR=...` from the build tree: where every file lands and
# with which mode, configuration that is never overwritten nor removed once
# changed, units that `systemd-analyze verify` accepts with the sandbox
# intact, sysusers.d and tmpfiles.d entries that systemd's own tools apply.

import filecmp
import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

import sshtund_testlib as tl

pytestmark = pytest.mark.alarm(600)

DIRS = ("prefix", "bindir", "sbindir", "sysconfdir", "localstatedir", "mandir", "docdir",
        "systemdsystemunitdir", "sysusersdir", "tmpfilesdir")
UNITS = ("sshtund.service", "sshtund.socket", "sshtund-sync-nodes.service",
         "sshtund-sync-nodes.timer")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
# systemd-analyze security's exposure, times ten: 1.2 today; fail past 2.0,
# so that a lost sandbox setting shows.
EXPOSURE_THRESHOLD = 20


make_env = tl.make_env
make = tl.make


@pytest.fixture(scope="module")
def dirs():
    """The installation directories of the build tree, as make expands them."""
    return tl.make_variables(*DIRS)


@pytest.fixture
def dest():
    d = tempfile.mkdtemp(prefix="sshtund-destdir-", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def under(dest, path):
    return os.path.join(dest, path.lstrip("/"))


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def files_under(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def test_install_layout(dirs, dest):
    make("install", f"DESTDIR={dest}")

    sbin, bindir, etc = (under(dest, dirs[k]) for k in ("sbindir", "bindir", "sysconfdir"))
    for path in (os.path.join(sbin, "sshtund"), os.path.join(bindir, "sshtunctl"),
                 os.path.join(sbin, "sshtund-sync-nodes")):
        assert os.path.isfile(path), path
        assert mode(path) == 0o755, f"{path}: mode {mode(path):o}"
    with open(os.path.join(sbin, "sshtund-sync-nodes")) as f:
        assert f.readline().startswith("#!/usr/bin/python3")

    init = os.path.join(etc, "init.d", "sshtund")
    assert mode(init) == 0o755, f"{init}: mode {mode(init):o}"
    with open(init) as f:
        text = f.read()
    assert "### BEGIN INIT INFO" in text
    assert f"DAEMON=${{SSHTUND_DAEMON:-{dirs['sbindir']}/sshtund}}" in text
    assert f"{dirs['sysconfdir']}/default/sshtund" in text
    assert subprocess.run(["sh", "-n", init], timeout=30).returncode == 0

    default = os.path.join(etc, "default", "sshtund")
    assert mode(default) == 0o644
    assert subprocess.run(["sh", "-n", default], timeout=30).returncode == 0

    sample = os.path.join(tl.SRCDIR, "etc", "sshtund.conf")
    conf = os.path.join(etc, "sshtund", "sshtund.conf")
    example = os.path.join(under(dest, dirs["docdir"]), "sshtund.conf.example")
    assert filecmp.cmp(conf, sample, shallow=False)
    assert filecmp.cmp(example, sample, shallow=False)
    assert mode(conf) == 0o644 and mode(example) == 0o644

    # The state directory, for hosts without systemd's tmpfiles.d.
    assert os.path.isdir(os.path.join(under(dest, dirs["localstatedir"]), "lib", "sshtund"))

    man = under(dest, dirs["mandir"])
    for page in ("man8/sshtund.8", "man8/sshtunctl.8", "man5/sshtund.conf.5",
                 "man8/sshtund-sync-nodes.8"):
        assert os.path.isfile(os.path.join(man, page)), page

    for d in ("sysusersdir", "tmpfilesdir"):
        if dirs[d]:
            assert os.path.isfile(os.path.join(under(dest, dirs[d]), "sshtund.conf")), d

    # The installed daemon runs.
    r = subprocess.run([os.path.join(sbin, "sshtund"), "--version"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("sshtund ")

    if not dirs["systemdsystemunitdir"]:
        pytest.skip("configured --without-systemdsystemunitdir")
    unitdir = under(dest, dirs["systemdsystemunitdir"])
    for u in UNITS:
        path = os.path.join(unitdir, u)
        assert mode(path) == 0o644, u
        with open(path) as f:
            text = f.read()
        leftover = re.findall(r"@[a-z_]+@", text)
        assert not leftover, f"{u}: unsubstituted {leftover}"
    with open(os.path.join(unitdir, "sshtund.service")) as f:
        text = f.read()
    assert f"ExecStart={dirs['sbindir']}/sshtund -c {dirs['sysconfdir']}/sshtund/sshtund.conf\n" \
        in text
    assert f"ExecStartPre={dirs['sbindir']}/sshtund -t -c " in text
    # reload waits for the daemon's answer
    assert re.findall(r"^ExecReload=.*$", text, re.M) == [f"ExecReload={dirs['bindir']}/sshtunctl reload"]
    assert "\nStateDirectory=sshtund\n" in text


def test_changed_configuration_survives_install_and_uninstall(dirs, dest):
    make("install", f"DESTDIR={dest}")
    etc = under(dest, dirs["sysconfdir"])
    conf = os.path.join(etc, "sshtund", "sshtund.conf")
    default = os.path.join(etc, "default", "sshtund")
    with open(conf, "a") as f:
        f.write("# changed by the administrator\n")
    with open(default, "a") as f:
        f.write("DAEMON_OPTS=-d\n")

    make("install", f"DESTDIR={dest}")
    with open(conf) as f:
        assert f.read().endswith("# changed by the administrator\n")
    with open(default) as f:
        assert f.read().endswith("DAEMON_OPTS=-d\n")
    # ... while the example is refreshed.
    example = os.path.join(under(dest, dirs["docdir"]), "sshtund.conf.example")
    assert filecmp.cmp(example, os.path.join(tl.SRCDIR, "etc", "sshtund.conf"), shallow=False)

    make("uninstall", f"DESTDIR={dest}")
    left = files_under(dest)
    assert left == {os.path.relpath(conf, dest), os.path.relpath(default, dest)}, left


def test_uninstall_removes_everything_unchanged(dirs, dest):
    make("install", f"DESTDIR={dest}")
    assert len(files_under(dest)) >= 10
    make("uninstall", f"DESTDIR={dest}")
    assert files_under(dest) == set()


@pytest.fixture
def installed_units(dirs, dest):
    """The installed units, copied with the install directories mapped
    into DESTDIR (systemd-analyze checks that every Exec*= program exists),
    and a MANPATH holding the installed pages (it checks Documentation=)."""
    if not dirs["systemdsystemunitdir"]:
        pytest.skip("configured --without-systemdsystemunitdir")
    make("install", f"DESTDIR={dest}")
    unitdir = under(dest, dirs["systemdsystemunitdir"])
    out = os.path.join(dest, "verify")
    os.makedirs(out)
    for u in UNITS:
        with open(os.path.join(unitdir, u)) as f:
            text = f.read()
        for d in ("sbindir", "bindir"):
            text = re.sub(r"^(Exec[A-Za-z]*=)" + re.escape(dirs[d]) + "/",
                          lambda m, d=d: m.group(1) + under(dest, dirs[d]) + "/", text, flags=re.M)
        with open(os.path.join(out, u), "w") as f:
            f.write(text)
    env = make_env()
    env["MANPATH"] = under(dest, dirs["mandir"])
    env["SYSTEMD_LOG_COLOR"] = "0"
    env["SYSTEMD_PAGER"] = "cat"
    return out, env


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed "
                    "(Debian: the systemd package; scripts/check installs it)")
def test_systemd_analyze_verify(installed_units):
    out, env = installed_units
    r = subprocess.run([SYSTEMD_ANALYZE, "verify", *UNITS], cwd=out, capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed")
def test_systemd_analyze_security_exposure(installed_units):
    out, env = installed_units
    r = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager",
                        f"--threshold={EXPOSURE_THRESHOLD}", "sshtund.service"],
                       cwd=out, capture_output=True, text=True, timeout=120, env=env)
    m = re.search(r"Overall exposure level for sshtund\.service: ([0-9.]+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    assert r.returncode == 0, f"exposure {m.group(1)} is above {EXPOSURE_THRESHOLD / 10}:\n" \
                              + "\n".join(ln for ln in r.stdout.splitlines() if "✗" in ln)


@pytest.mark.skipif(not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")),
                    reason="systemd-sysusers or systemd-tmpfiles is not installed")
def test_sysusers_and_tmpfiles_apply(dirs, dest):
    if not (dirs["sysusersdir"] and dirs["tmpfilesdir"]):
        pytest.skip("configured without sysusers.d or tmpfiles.d")
    make("install", f"DESTDIR={dest}")
    root = os.path.join(dest, "root")
    os.makedirs(os.path.join(root, "etc"))
    sysusers = os.path.join(under(dest, dirs["sysusersdir"]), "sshtund.conf")
    tmpfiles = os.path.join(under(dest, dirs["tmpfilesdir"]), "sshtund.conf")

    r = subprocess.run(["systemd-sysusers", f"--root={root}", sysusers], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(root, "etc", "passwd")) as f:
        users = {ln.split(":")[0]: ln.rstrip("\n").split(":") for ln in f if ln.strip()}
    assert "sshtund" in users, users
    _, _, uid, gid, gecos, home, shell = users["sshtund"]
    assert int(uid) < 1000 and shell.endswith("nologin"), users["sshtund"]
    with open(os.path.join(root, "etc", "group")) as f:
        groups = {ln.split(":")[0]: ln.rstrip("\n").split(":") for ln in f if ln.strip()}
    assert groups["sshtund"][2] == gid, groups
    # the read-only admin socket's group, with sshtund in it (to chown the
    # socket to it); adding a monitoring user to it is all it takes
    assert "sshtund" in groups["sshtund-monitor"][3].split(","), groups

    if not tl.is_root():
        return  # tmpfiles would chown to sshtund
    r = subprocess.run(["systemd-tmpfiles", "--create", f"--root={root}", tmpfiles],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for d in ("run/sshtund", "var/lib/sshtund"):
        st = os.stat(os.path.join(root, d))
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755, d
        assert (st.st_uid, st.st_gid) == (int(uid), int(gid)), d
