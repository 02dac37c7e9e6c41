# `make install DESTDIR=...` for the Kubernetes pieces: sshtund-publish-hostkey
# and the two man pages land where they should, the units made from .in
# files have their paths filled in, `systemd-analyze verify` accepts the new
# units and `systemd-analyze security` rates their sandboxes, groff reads the
# man pages without a warning, and the installed scripts run.

import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

import sshtund_testlib as tl

pytestmark = pytest.mark.alarm(600)

DIRS = ("prefix", "bindir", "sbindir", "sysconfdir", "mandir", "systemdsystemunitdir")
NEW_UNITS = ("sshtund-sync-nodes-watch.service", "sshtund-publish-hostkey.service",
             "sshtund-publish-hostkey.path")
# What the new units refer to, copied next to them for verify.
RELATED_UNITS = ("sshtund-sync-nodes.service", "sshtund-sync-nodes.timer")
PAGES = ("man8/sshtund-sync-nodes.8", "man8/sshtund-publish-hostkey.8")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
EXPOSURE_THRESHOLD = 25  # tenths: 2.0 and 1.6 today


make_env = tl.make_env
make = tl.make


def under(dest, path):
    return os.path.join(dest, path.lstrip("/"))


@pytest.fixture(scope="module")
def installed():
    """(installation directories, DESTDIR) after one make install."""
    with tempfile.TemporaryDirectory(prefix="sshtund-k8s-") as tmp:
        mk = os.path.join(tmp, "print.mk")
        with open(mk, "w") as f:
            f.write("print-install-dirs:\n")
            for d in DIRS:
                f.write(f"\t@echo '{d}=$({d})'\n")
        r = make("-s", "-f", "Makefile", "-f", mk, "print-install-dirs")
        dirs = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        dest = os.path.join(tmp, "dest")
        make("install", f"DESTDIR={dest}")
        yield dirs, dest


def test_scripts_and_man_pages(installed):
    dirs, dest = installed
    sbin = under(dest, dirs["sbindir"])
    for name in ("sshtund-publish-hostkey", "sshtund-sync-nodes"):
        path = os.path.join(sbin, name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o755, path
        with open(path) as f:
            assert f.readline() == "#!/usr/bin/python3\n"
        r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "usage:" in r.stdout, r.stderr
    man = under(dest, dirs["mandir"])
    groff = shutil.which("groff")
    for page in PAGES:
        path = os.path.join(man, page)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, page
        if groff:
            r = subprocess.run([groff, "-man", "-ww", "-z", path], capture_output=True, text=True,
                               timeout=60, env=make_env())
            assert r.returncode == 0 and r.stderr == "", f"{page}: {r.stderr}"


def test_every_option_is_in_its_man_page(installed):
    dirs, dest = installed
    sbin, man = under(dest, dirs["sbindir"]), under(dest, dirs["mandir"])
    for name in ("sshtund-publish-hostkey", "sshtund-sync-nodes"):
        r = subprocess.run([os.path.join(sbin, name), "--help"], capture_output=True, text=True,
                           timeout=30)
        options = set(re.findall(r"(--[a-z][a-z-]+)", r.stdout)) - {"--help"}
        assert options, r.stdout
        with open(os.path.join(man, "man8", name + ".8")) as f:
            page = f.read().replace("\\-", "-")
        missing = sorted(o for o in options if o not in page)
        assert not missing, f"{name}(8) does not describe {missing}"


def test_units(installed):
    dirs, dest = installed
    if not dirs["systemdsystemunitdir"]:
        pytest.skip("configured --without-systemdsystemunitdir")
    unitdir = under(dest, dirs["systemdsystemunitdir"])
    texts = {}
    for u in NEW_UNITS:
        path = os.path.join(unitdir, u)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, u
        with open(path) as f:
            texts[u] = f.read()
        assert not re.findall(r"@[a-z_]+@", texts[u]), u
    sbin, bindir, etc = dirs["sbindir"], dirs["bindir"], dirs["sysconfdir"]
    assert f"ExecStart={sbin}/sshtund-sync-nodes --watch --trust-host-keys --sshtunctl " \
        f"{bindir}/sshtunctl --output {etc}/sshtund/nodes.conf\n" \
        in texts["sshtund-sync-nodes-watch.service"]
    assert "CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE\n" \
        in texts["sshtund-sync-nodes-watch.service"]
    assert "Type=simple\n" in texts["sshtund-sync-nodes-watch.service"]
    assert "Restart=always\n" in texts["sshtund-sync-nodes-watch.service"]
    assert f"ExecStart={sbin}/sshtund-publish-hostkey\n" in texts["sshtund-publish-hostkey.service"]
    assert "Type=oneshot\n" in texts["sshtund-publish-hostkey.service"]
    assert "PathChanged=/etc/ssh/ssh_host_ed25519_key.pub\n" in texts["sshtund-publish-hostkey.path"]


@pytest.fixture
def verify_dir(installed, tmp_path):
    """The installed units with the Exec*= programs mapped into DESTDIR
    (verify checks that they exist), and a MANPATH for Documentation=."""
    dirs, dest = installed
    if not dirs["systemdsystemunitdir"]:
        pytest.skip("configured --without-systemdsystemunitdir")
    unitdir = under(dest, dirs["systemdsystemunitdir"])
    for u in NEW_UNITS + RELATED_UNITS:
        with open(os.path.join(unitdir, u)) as f:
            text = f.read()
        text = re.sub(r"^(Exec[A-Za-z]*=)" + re.escape(dirs["sbindir"]) + "/",
                      lambda m: m.group(1) + under(dest, dirs["sbindir"]) + "/", text, flags=re.M)
        (tmp_path / u).write_text(text)
    env = make_env()
    env["MANPATH"] = under(dest, dirs["mandir"])
    env["SYSTEMD_LOG_COLOR"] = "0"
    env["SYSTEMD_PAGER"] = "cat"
    return str(tmp_path), env


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(verify_dir):
    out, env = verify_dir
    r = subprocess.run([SYSTEMD_ANALYZE, "verify", *NEW_UNITS], cwd=out, capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", \
        r.stdout + r.stderr


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", ["sshtund-sync-nodes-watch.service",
                                  "sshtund-publish-hostkey.service"])
def test_systemd_analyze_security_exposure(verify_dir, unit):
    out, env = verify_dir
    r = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager",
                        f"--threshold={EXPOSURE_THRESHOLD}", unit],
                       cwd=out, capture_output=True, text=True, timeout=120, env=env)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    assert r.returncode == 0, f"{unit}: exposure {m.group(1)} is above " \
                              f"{EXPOSURE_THRESHOLD / 10}"
