"""Compose files converted to units: the exact unit lines and a report row for every key.

The files are in files/: v2 syntax, v3 syntax, the web + redis shape, interpolation
(with a .env and an env_file beside the file), and keys that cannot be expressed.
Every unit produced loads with `vulcano.units.load`. Pure: no cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.units.service_config import expand_env, service_config
from container.compose import Conversion, Options, Result, Runtime, convert, load_file, load_text
from vulcano import units

FILES = Path(__file__).parent / "files"
BASE = Path("/srv/compose")
C, A, N = "converted", "approximated", "not expressible"


def _convert(name: str, env: dict[str, str] | None = None, **kw: object) -> Conversion:
    project = "" if name == "interp" else "t"
    options = Options(project=project, base_dir=BASE, **kw)  # type: ignore[arg-type]
    return convert(load_file(FILES / name / "docker-compose.yml", env or {}), options)


def _text(conversion: Conversion, unit: str) -> str:
    return next(f.text for f in conversion.files if f.name == unit)


def _rows(conversion: Conversion) -> list[tuple[str, str]]:
    return [(r.key, str(r.result)) for r in conversion.report]


def _detail(conversion: Conversion, key: str) -> str:
    return next(r.detail for r in conversion.report if r.key == key)


def test_the_web_and_redis_shape_becomes_a_template_of_three_and_one_unit() -> None:
    c = _convert("webredis")
    assert [f.name for f in c.files] == ["t-web@.service", "t-redis.service"]
    assert c.service("web").starts == tuple(f"t-web@{i}.service" for i in (1, 2, 3))
    assert c.levels == (("redis",), ("web",))
    assert _text(c, "t-web@.service") == (
        "[Unit]\nDescription=t service web (example/web:1)\n\n"
        "[Service]\n"
        "Environment=REDIS_HOST=redis\n"
        "ExecStartPre=-docker rm -f t-web-%i\n"
        "ExecStart=docker run --rm --name t-web-%i --network host -e REDIS_HOST "
        "example/web:1 python3 /app/web.py 8000\n"
        "ExecStop=docker stop t-web-%i\n"
        "Restart=always\n\n"
        "[X-Vulcano]\nSandbox=true\nPort=8000\n"
        "Check=exec interval=5s -- docker exec t-web-%i curl -fs http://127.0.0.1:8000/\n\n"
        "[X-Fleet]\nConflicts=t-web@*.service\n"
    )
    assert _text(c, "t-redis.service") == (
        "[Unit]\nDescription=t service redis (redis:7)\n\n"
        "[Service]\n"
        "ExecStartPre=-docker rm -f t-redis\n"
        "ExecStart=docker run --rm --name t-redis --network host -v t_redis-data:/data "
        "redis:7 redis-server --appendonly yes\n"
        "ExecStop=docker stop t-redis\n"
        "Restart=always\n\n"
        "[X-Vulcano]\nSandbox=true\n"
    )
    assert _rows(c) == [
        ("volumes.redis-data", A),
        ("services.web.image", C),
        ("services.web.command", C),
        ("services.web.environment", C),
        ("services.web.ports[0]", A),
        ("services.web.healthcheck.test", C),
        ("services.web.healthcheck.retries", C),
        ("services.web.healthcheck.interval", C),
        ("services.web.healthcheck.timeout", C),
        ("services.web.restart", C),
        ("services.web.deploy.replicas", C),
        ("services.redis.image", C),
        ("services.redis.command", C),
        ("services.redis.volumes[0]", C),
        ("services.redis.restart", C),
        ("services", C),
        ("services.web.depends_on[0]", A),
        ("services.web", C),
        ("services.redis", C),
    ]
    assert "published port 8080 is not mapped" in _detail(c, "services.web.ports[0]")
    assert "--add-host redis:ADDRESS at compose up" in _detail(c, "services.web.depends_on[0]")


def test_an_address_known_to_compose_up_resolves_the_dependency_by_name() -> None:
    c = _convert("webredis", addresses={"redis": "10.1.2.3"})
    assert "--network host --add-host redis:10.1.2.3 -e REDIS_HOST" in _text(c, "t-web@.service")
    assert _detail(c, "services.web.depends_on[0]") == (
        "compose up starts it first; reached over the overlay: --add-host redis:10.1.2.3"
    )
    assert dict(_rows(c))["services.web.depends_on[0]"] == C


def test_podman_with_its_own_options() -> None:
    runtime = Runtime("podman", ("--runtime", "runc"), ("--ulimit", "nofile=1024:1024"))
    text = _text(_convert("webredis", runtime=runtime), "t-redis.service")
    assert "ExecStartPre=-podman --runtime runc rm -f t-redis\n" in text
    assert (
        "ExecStart=podman --runtime runc run --rm --name t-redis --network host "
        "--ulimit nofile=1024:1024 -v t_redis-data:/data redis:7" in text
    )
    assert "ExecStop=podman --runtime runc stop t-redis\n" in text


def test_v2_syntax_scale_links_shared_volumes_and_conditions() -> None:
    c = _convert("v2")
    assert c.levels == (("db",), ("app", "backup"))
    app = _text(c, "t-app@.service")
    assert (
        "ExecStart=docker run --rm --name t-app-%i --network host -e MODE --memory 256m "
        "--entrypoint /entry.sh example/app:2 --verbose serve\n" in app
    )
    assert "Restart=on-failure\n" in app and "Conflicts=t-app@*.service" in app
    assert _text(c, "t-db.service") == (
        "[Unit]\nDescription=t service db (postgres:15)\n\n"
        "[Service]\n"
        "ExecStartPre=-docker rm -f t-db\n"
        "ExecStart=docker run --rm --name t-db --network host "
        "-v t_dbdata:/var/lib/postgresql/data "
        "-v /srv/compose/init.sql:/docker-entrypoint-initdb.d/init.sql:ro postgres:15\n"
        "ExecStop=docker stop -t 90 t-db\n"
        "TimeoutStopSec=95\n\n"
        "[X-Vulcano]\n"
        "Check=exec timeout=5s failing=5 -- docker exec t-db /bin/sh -c 'pg_isready -U postgres'\n"
    )
    # backup mounts db's volume: a volume lives on one machine, so it sits beside db
    backup = _text(c, "t-backup.service")
    assert "After=t-db.service\nRequires=t-db.service\n" in backup
    assert "[X-Fleet]\nMachineOf=t-db.service\n" in backup
    assert _rows(c) == [
        ("version", C),
        ("volumes.dbdata", A),
        ("services.app.image", C),
        ("services.app.scale", C),
        ("services.app.mem_limit", C),
        ("services.app.entrypoint", C),
        ("services.app.command", C),
        ("services.app.environment", A),
        ("services.app.restart", A),
        ("services.app.links", N),
        ("services.db.image", C),
        ("services.db.volumes[0]", C),
        ("services.db.volumes[1]", A),
        ("services.db.healthcheck.test", C),
        ("services.db.healthcheck.retries", C),
        ("services.db.healthcheck.start_period", N),
        ("services.db.healthcheck.interval", C),
        ("services.db.healthcheck.timeout", C),
        ("services.db.network_mode", C),
        ("services.db.stop_grace_period", C),
        ("services.backup.image", C),
        ("services.backup.volumes[0]", C),
        ("services", C),
        ("services.app.depends_on.db", A),
        ("services.app", C),
        ("services.db", C),
        ("services.backup.depends_on[0]", C),
        ("services.backup", C),
    ]
    assert "must exist on whichever machine" in _detail(c, "services.db.volumes[1]")
    assert "DEBUG without a value" in _detail(c, "services.app.environment")
    assert "not healthy" in _detail(c, "services.app.depends_on.db")
    assert "shares the volume t_dbdata" in _detail(c, "services.backup.depends_on[0]")


def test_v3_syntax_deploy_placement_resources_and_global() -> None:
    c = _convert("v3")
    api = _text(c, "t-api@.service")
    assert (
        "ExecStart=docker run --rm --name t-api-%i --network host --workdir /srv --user "
        "1000:1000 --hostname api --label com.example.team=backend --cpus 0.5 --memory 128M "
        'example/api:3 gunicorn -b 0.0.0.0:8000 "app:create_app()"\n' in api
    )
    assert "Restart=on-failure\nRestartSec=5s\n" in api
    assert "Port=8000\nPort=9000/udp\nPort=9001/udp\n" in api
    assert "[X-Fleet]\nConflicts=t-api@*.service\nMachineMetadata=region=eu\n" in api
    assert "[X-Fleet]\nGlobal=true\n" in _text(c, "t-agent.service")
    assert "Check=" not in _text(c, "t-agent.service")
    assert _rows(c) == [
        ("version", C),
        ("services.api.image", C),
        ("services.api.command", C),
        ("services.api.working_dir", C),
        ("services.api.user", C),
        ("services.api.hostname", C),
        ("services.api.labels", C),
        ("services.api.ports[0]", A),
        ("services.api.ports[1]", C),
        ("services.api.deploy.replicas", C),
        ("services.api.deploy.placement.constraints[0]", C),
        ("services.api.deploy.placement.constraints[1]", N),
        ("services.api.deploy.resources.limits.cpus", C),
        ("services.api.deploy.resources.limits.memory", C),
        ("services.api.deploy.resources.reservations", N),
        ("services.api.deploy.restart_policy.condition", C),
        ("services.api.deploy.restart_policy.delay", C),
        ("services.api.deploy.restart_policy.max_attempts", N),
        ("services.api.deploy.update_config", N),
        ("services.agent.image", C),
        ("services.agent.deploy.mode", C),
        ("services.agent.healthcheck.test", C),
        ("services.agent.restart", C),
        ("services", C),
        ("services.api", C),
        ("services.agent", C),
    ]


def test_interpolation_dotenv_and_env_file() -> None:
    c = _convert("interp", {"DISCOUNT": "1"})
    assert c.project == "shop"
    assert _text(c, "shop-web.service") == (
        "[Unit]\nDescription=shop service web (docker.io/shop/web:1.2)\n\n"
        "[Service]\n"
        "Environment=LOG_LEVEL=info\n"
        'Environment="QUOTED=a \\"b\\""\n'
        'Environment="PRICE=$5 on sale"\n'
        "Environment=EMPTY=\n"
        "ExecStartPre=-docker rm -f shop-web\n"
        "ExecStart=docker run --rm --name shop-web --network host -e LOG_LEVEL -e QUOTED "
        '-e PRICE -e EMPTY docker.io/shop/web:1.2 sh -c "echo $$HOME hi there; sleep 100%%"\n'
        "ExecStop=docker stop shop-web\n\n"
        "[X-Vulcano]\nSandbox=true\n"
    )
    assert _rows(c) == [
        ("name", C),
        ("services.web.image", C),
        ("services.web.command", C),
        ("services.web.env_file", A),
        ("services.web.environment", C),
        ("services", C),
        ("${UNSET_ONE}", A),
        ("services.web", C),
    ]
    assert "optional.env not found" in _detail(c, "services.web.env_file")
    # the environment wins over .env, a shell default over nothing
    c = _convert("interp", {"TAG": "9", "PROJECT": "Other", "REGISTRY": ""})
    assert c.project == "other"
    assert "Description=other service web (/shop/web:9)" in c.files[0].text


def test_keys_that_cannot_be_expressed_each_get_a_row_saying_why() -> None:
    c = _convert("inexpressible")
    assert _rows(c) == [
        ("services.app.image", C),
        ("services.app.build", N),
        ("services.app.privileged", N),
        ("services.app.devices", N),
        ("services.app.secrets", N),
        ("services.app.network_mode", N),
        ("services.app.links", N),
        ("services.app.cap_add", C),
        ("services.app.tty", N),
        ("services.app.frobnicate", N),
        ("services.app.x-note", A),
        ("services.app.volumes[0]", N),
        ("services.app.volumes[1]", C),
        ("services.app.ports[0]", N),
        ("services.cache.image", C),
        ("services.cache.networks", A),
        ("services", C),
        ("networks.back", A),
        ("secrets.token", N),
        ("configs.settings", N),
        ("x-common", A),
        ("include", N),
        ("services.app", C),
        ("services.cache", C),
    ]
    assert "builds no images" in _detail(c, "services.app.build")
    assert "not a Compose service key" in _detail(c, "services.app.frobnicate")
    assert "--privileged" not in c.files[0].text
    assert all(r.detail for r in c.report)


@pytest.mark.parametrize("name", ["v2", "v3", "webredis", "interp", "inexpressible"])
def test_every_unit_loads_and_every_row_has_a_known_result(name: str) -> None:
    c = _convert(name, {"DISCOUNT": "1"})
    for unit in c.files:
        units.load(unit.text, unit.name)
    assert {r.result for r in c.report} <= set(Result)
    assert len({r.key for r in c.report}) == len(c.report)


def test_command_words_reach_the_runner_exactly_as_the_file_wrote_them() -> None:
    words = ["sh", "-c", "a; b", ";", "%i", "$X", "it's", 'a"b\\c', "tab\there", "", "ü"]
    in_file = [w.replace("$", "$$") for w in words]  # a '$' is written $$ in Compose
    text = f"services:\n  web:\n    image: x\n    command: {json.dumps(in_file)}\n"
    text += "    environment: {V: '50% \"$$HOME\" \\\\ x'}\n    deploy: {replicas: 2}\n"
    c = convert(load_text(text), Options(project="t"))
    cfg = service_config(c.files[0].text, "t-web@2.service", {"hostname": "h"})
    argv = expand_env(cfg.start[0].argv, cfg.environment)  # as the supervisor spawns it
    assert argv[argv.index("--name") + 1] == "t-web-2"
    assert argv[-len(words) :] == words
    assert cfg.environment == {"V": '50% "$HOME" \\\\ x'}  # YAML's '\\' is two


def test_network_mode_service_shares_the_container_network_on_the_same_machine() -> None:
    text = "services:\n  vpn: {image: v}\n  app: {image: a, network_mode: 'service:vpn'}\n"
    c = convert(load_text(text), Options(project="p"))
    assert c.levels == (("vpn",), ("app",))
    assert _text(c, "p-app.service") == (
        "[Unit]\nDescription=p service app (a)\nAfter=p-vpn.service\nRequires=p-vpn.service\n\n"
        "[Service]\n"
        "ExecStartPre=-docker rm -f p-app\n"
        "ExecStart=docker run --rm --name p-app --network container:p-vpn a\n"
        "ExecStop=docker stop p-app\n\n"
        "[X-Fleet]\nMachineOf=p-vpn.service\n"
    )
    assert dict(_rows(c))["services.app.network_mode"] == C


def test_a_variable_named_without_a_value_comes_from_the_environment_converting() -> None:
    c = _convert("v2", {"DEBUG": "1"})
    assert "Environment=MODE=production\nEnvironment=DEBUG=1\n" in _text(c, "t-app@.service")
    assert "-e MODE -e DEBUG" in _text(c, "t-app@.service")
    assert dict(_rows(c))["services.app.environment"] == C
    assert "DEBUG from the environment" in _detail(c, "services.app.environment")
