"""ACME certificates: certbot's command lines, its hook run by a real shell, the cron
file, and the issue/renew workflows on the recording fake engine."""
from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from deploy.engine.commands import certbot, cron
from deploy.engine.ops import Executor, Note, Put
from deploy.stack import acme, schedule, tls
from tests.unit.test_ops import fleet_of

PEBBLE = "https://127.0.0.1:14000/dir"


def quiet() -> Executor:
    return Executor(say=lambda _: None)


def deployed(fake_settings, names: list[str]):
    """A fleet of fake hosts that have the compose files (the proxy's user is read from them)."""
    fleet, engines = fleet_of(fake_settings, names)
    for m in fleet.members:
        for path in m.stack.project.files:
            engines[m.name].files[path] = b"services: {}\n"
        engines[m.name].dirs.add(cron.CRON_DIR)  # cron is installed
    return fleet, engines


def test_the_flags_are_checked_before_anything_runs():
    req = acme.request("App.example.test, www.example.test,app.example.test", "ops@example.test", PEBBLE, "/etc/ca.pem")
    assert req.domains == ("app.example.test", "www.example.test") and req.ca_bundle == "/etc/ca.pem"
    assert acme.request("a.example.test", "ops@example.test", acme.LETS_ENCRYPT, "").server.startswith("https://acme-v02.")
    for args, message in [(("a.test;id", "o@e.test", PEBBLE, ""), "is not a domain name"),
                          (("a.test", "ops", PEBBLE, ""), "is not an e-mail address"),
                          (("a.test", "o@e.test", "http://ca.test/dir", ""), "is not an https:// URL"),
                          (("a.test", "o@e.test", "https://ca.test/dir x", ""), "is not an https:// URL"),
                          (("a.test", "o@e.test", PEBBLE, "ca.pem"), "is not an absolute path")]:
        with pytest.raises(Exit, match=message):
            acme.request(*args)


def test_certbot_keeps_its_state_in_our_folder_and_trusts_a_private_ca_only_when_told():
    argv = certbot.certonly("/s/certbot", server=PEBBLE, email="o@e.test", domains=["a.test", "b.test"], webroot="/s/acme",
                            name="myapp-prod", hook="/s/certbot/hook sh", ca_bundle="/ca.pem")
    assert argv == ["env", "REQUESTS_CA_BUNDLE=/ca.pem", "certbot", "--non-interactive", "--config-dir", "/s/certbot/config",
                    "--work-dir", "/s/certbot/work", "--logs-dir", "/s/certbot/logs", "certonly", "--webroot", "-w", "/s/acme",
                    "-d", "a.test", "-d", "b.test", "--cert-name", "myapp-prod", "--server", PEBBLE, "--agree-tos", "-m", "o@e.test",
                    "--no-eff-email", "--key-type", "ecdsa", "--keep-until-expiring", "--expand",
                    "--reuse-key", "--deploy-hook", "'/s/certbot/hook sh'"]  # certbot runs the hook through a shell: quoted once
    assert certbot.renew("/b", "n")[:2] == ["certbot", "--non-interactive"]
    assert certbot.renew("/b", "n", force=True)[-3:] == ["n", "--no-random-sleep-on-renew", "--force-renewal"]


def test_the_hook_installs_key_and_chain_in_one_rename_with_a_real_shell(tmp_path: Path):
    lineage, tls_dir = tmp_path / "live" / "x", tmp_path / "tls dir"
    lineage.mkdir(parents=True)
    tls_dir.mkdir()
    (lineage / "privkey.pem").write_text("KEY\n")
    (lineage / "fullchain.pem").write_text("CHAIN\n")
    (tls_dir / "current.pem").write_text("OLD\n")
    hook = tmp_path / "hook.sh"
    hook.write_text(certbot.install_hook(str(tls_dir / ".current.pem.new"), str(tls_dir / "current.pem"), f"{os.getuid()}:{os.getgid()}"))
    hook.chmod(0o700)
    subprocess.run([str(hook)], env={**os.environ, "RENEWED_LINEAGE": str(lineage)}, check=True, timeout=10)
    assert (tls_dir / "current.pem").read_text() == "KEY\nCHAIN\n"
    assert (tls_dir / "current.pem").stat().st_mode & 0o777 == 0o600 and os.listdir(tls_dir) == ["current.pem"]


def test_a_cron_file_runs_the_command_as_root_with_percent_escaped():
    text = cron.crontab("7 3,15 * * *", ["certbot", "renew", "--name", "50%"], "/s/renew log", "renews")
    assert text.splitlines()[-1] == "7 3,15 * * * root certbot renew --name 50\\% >>'/s/renew log' 2>&1"
    assert cron.command_of(text) == "certbot renew --name 50% >>'/s/renew log' 2>&1"
    assert cron.command_of("# nothing\nSHELL=/bin/sh\n") is None
    assert cron.file_name("deploy", "my.app-prod", "tls") == "deploy-my-app-prod-tls"  # cron skips names with dots


def test_issue_answers_through_nginx_installs_by_hook_and_schedules_renewal(fake_settings):
    fleet, engines = deployed(fake_settings, ["h1"])
    stack, engine = fleet.members[0].stack, engines["h1"]
    req = acme.request("a.example.test", "ops@example.test", PEBBLE, "/ca.pem")
    plan = Executor(dry_run=True, say=lambda _: None)
    plan(acme.issue(fleet, req))
    executor = quiet()
    executor(acme.issue(fleet, req))
    assert [op for op in executor.applied if not isinstance(op, Note)] == [op for op in plan.planned if not isinstance(op, Note)]
    job = acme.renewal(stack, "/ca.pem")
    assert engine.files[job.path].decode().splitlines()[-1].endswith(f">>{stack.state_file('certbot/renew.log')} 2>&1")
    puts = {op.path: op.mode for op in executor.applied if isinstance(op, Put)}
    assert puts == {stack.state_file(acme.HOOK_FILE): 0o700, stack.state_file(acme.SETTINGS_FILE): 0o600, job.path: 0o644}
    certonly = next(c.argv for c in engine.journal if "certonly" in c.argv)
    assert certonly[certonly.index("-w") + 1] == stack.state_file("acme")  # the folder nginx serves the challenges from
    hook = engine.files[stack.state_file(acme.HOOK_FILE)].decode()
    assert f"mv -f -T {stack.state_file(tls.STAGED_FILE)} {stack.state_file(tls.PEM_FILE)}" in hook
    assert "--force-renewal" not in job.argv and "REQUESTS_CA_BUNDLE=/ca.pem" in job.argv
    assert schedule.installed(stack, job)


def test_on_hosts_the_first_app_host_gets_it_and_the_others_a_copy(fake_settings):
    fleet, engines = deployed(fake_settings, ["h1", "h2", "h3"])
    pem_path = fleet.members[0].stack.state_file(tls.PEM_FILE)
    engines["h1"].files[pem_path] = b"KEY+CHAIN from certbot's hook"
    quiet()(acme.issue(fleet, acme.request("a.example.test", "ops@example.test", PEBBLE, "")))
    assert any("certonly" in c.argv for c in engines["h1"].journal if c.host == "h1")
    assert not any("certbot" in " ".join(c.argv) for c in engines["h2"].journal if c.host != "h1")
    assert engines["h2"].files[pem_path] == engines["h3"].files[pem_path] == b"KEY+CHAIN from certbot's hook"


def test_a_host_without_cron_is_told_to_install_it(fake_settings):
    fleet, engines = fleet_of(fake_settings, ["h1"])
    engines["h1"].files.update({path: b"" for path in fleet.members[0].stack.project.files})
    with pytest.raises(Exit, match=r"finding cron's folder /etc/cron.d failed on h1(.|\n)*apt-get install cron"):
        quiet()(acme.issue(fleet, acme.request("a.example.test", "ops@example.test", PEBBLE, "")))
    assert not any("certonly" in c.argv for c in engines["h1"].journal)  # found out before asking the CA


def test_renew_needs_an_issued_certificate_then_renews_with_its_ca(fake_settings):
    fleet, engines = deployed(fake_settings, ["h1"])
    with pytest.raises(Exit, match="no ACME certificate was issued for this stage on h1"):
        quiet()(acme.renew(fleet, force=False))
    quiet()(acme.issue(fleet, acme.request("a.example.test", "ops@example.test", PEBBLE, "/ca.pem")))
    quiet()(acme.renew(fleet, force=True))
    renewal = [c.argv for c in engines["h1"].journal if "renew" in c.argv][-1]
    assert renewal[:2] == ("env", "REQUESTS_CA_BUNDLE=/ca.pem") and renewal[-1] == "--force-renewal"


def test_certbot_runs_only_on_the_stages_first_app_host(fake_settings):
    fleet, _ = deployed(fake_settings, ["h1", "h2"])
    stage = dataclasses.replace(fleet.settings.stage, hosts=tuple(m.host for m in fleet.members))
    fleet = dataclasses.replace(fleet, settings=dataclasses.replace(fleet.settings, stage=stage))
    assert acme.acme_host(fleet).name == "h1"
    with pytest.raises(Exit, match="certbot runs on the stage's first app host, h1, which this run leaves out"):
        acme.acme_host(dataclasses.replace(fleet, members=fleet.members[1:]))
