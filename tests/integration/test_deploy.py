"""Deployment artefacts in deploy/, each checked by a real tool, and the timeouts, ports and
paths of every layer checked against the ebsd configuration that layer runs with.

Tools (installed by scripts/deploy-tools; a missing tool fails, it is never skipped):
yamllint, systemd-analyze, shellcheck, dpkg/apt-cache, ldd/readelf, pkg-config, node with
tools/node/node_modules (dockerfilelint, dockerfile-utils, cfn-lint + @aws-cdk/cfnspec),
and Debian's python3-yaml and python3-botocore (ECS API shapes).
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EBSD_BIN, SOURCE_DIR, run  # noqa: E402

DEPLOY = os.path.join(SOURCE_DIR, "deploy")
NODE_DIR = os.path.join(SOURCE_DIR, "tools", "node")
DOCKERFILE = os.path.join(DEPLOY, "docker", "Dockerfile")
UNIT = os.path.join(DEPLOY, "systemd", "ebsd.service")
CFN_TEMPLATE = os.path.join(DEPLOY, "cloudformation", "ebsd-alb-apigw.yaml")
TASK_DEF = os.path.join(DEPLOY, "ecs", "task-definition.json")
ECS_SERVICE = os.path.join(DEPLOY, "ecs", "service.json")
IAM_POLICY = os.path.join(DEPLOY, "ecs", "iam-policy.json")
DEPLOY_DOC = os.path.join(SOURCE_DIR, "docs", "DEPLOY.md")

INSTALL_HINT = "run scripts/deploy-tools to install the deploy test tools"

# API Gateway HTTP APIs accept integration timeouts of 50..30000 ms.
HTTP_API_MAX_TIMEOUT_MS = 30000


# ---- helpers -------------------------------------------------------------------------------

def need(cmd):
    path = shutil.which(cmd)
    if path is None:
        raise AssertionError("required tool '%s' is not installed (%s)" % (cmd, INSTALL_HINT))
    return path


def node_bin(name):
    need("node")
    path = os.path.join(NODE_DIR, "node_modules", ".bin", name)
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing (%s: npm ci in tools/node)" % (path, INSTALL_HINT))
    return path


def sh(argv, ok_codes=(0,), **kw):
    """Runs argv; returns CompletedProcess; fails with its output unless rc in ok_codes."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       stdin=subprocess.DEVNULL, **kw)
    if p.returncode not in ok_codes:
        raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(shlex.quote(a) for a in argv), p.returncode, p.stdout, p.stderr))
    return p


def yaml_mod():
    try:
        import yaml
    except ImportError:
        raise AssertionError("python3-yaml is not installed (%s)" % INSTALL_HINT)
    return yaml


def load_yaml_docs(path):
    yaml = yaml_mod()
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_cfn(path):
    """CloudFormation YAML with short-form tags: !Ref X -> {"Ref": X}, !Sub s -> {"Fn::Sub": s}."""
    yaml = yaml_mod()

    class Loader(yaml.SafeLoader):
        pass

    def tag(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {"Fn::" + suffix: value}

    Loader.add_multi_constructor("!", tag)
    with open(path) as f:
        return yaml.load(f, Loader=Loader)


def k8s_objects():
    objs = {}
    d = os.path.join(DEPLOY, "kubernetes")
    for name in sorted(os.listdir(d)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            for doc in load_yaml_docs(os.path.join(d, name)):
                objs[(doc["kind"], doc["metadata"]["name"])] = doc
    return objs


def listen_port(cfg):
    listen = cfg.get("listen")
    assert listen, "config has no explicit listen address: %r" % cfg
    host, _, port = listen.rpartition(":")
    assert host in ("0.0.0.0", "[::]", "::"), \
        "a deployed ebsd must listen on all interfaces, not %r" % listen
    return int(port)


def ebsd_config_texts():
    """{layer: YAML text} of every ebsd config deploy/ hands to ebsd, exactly as ebsd reads it."""
    texts = {}
    for layer in ("docker", "systemd"):
        with open(os.path.join(DEPLOY, layer, "ebsd.yaml")) as f:
            texts[layer] = f.read()
    texts["kubernetes"] = k8s_objects()[("ConfigMap", "ebsd-config")]["data"]["ebsd.yaml"]
    with open(TASK_DEF) as f:
        td = json.load(f)
    env = {e["name"]: e["value"] for e in td["containerDefinitions"][0]["environment"]}
    texts["ecs"] = env["EBSD_CONFIG_YAML"]
    return texts


def ebsd_configs():
    """{layer: parsed ebsd config} for every config file deploy/ hands to ebsd."""
    yaml = yaml_mod()
    return {layer: yaml.safe_load(text) for layer, text in ebsd_config_texts().items()}


def timeouts(cfg):
    """The values other layers must agree with, required to be explicit in deployed configs."""
    try:
        return {
            "port": listen_port(cfg),
            "idle_timeout_s": int(cfg["server"]["idle_timeout_s"]),
            "drain_timeout_s": int(cfg["server"]["drain_timeout_s"]),
            "max_timeout_ms": int(cfg["routes"]["max_timeout_ms"]),
        }
    except KeyError as e:
        raise AssertionError("deployed config must set %s explicitly: %r" % (e, cfg))


def dockerfile_stages():
    """[(from_line, [(instruction, args)])] with continuation lines joined."""
    with open(DOCKERFILE) as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append((args.strip(), []))
        else:
            assert stages, "instruction before FROM: %s" % line
            stages[-1][1].append((instr, re.sub(r"\s+", " ", args.strip())))
    return stages


def apt_installed(instrs):
    """Packages named by `apt-get install` in a stage's RUN instructions."""
    pkgs = []
    for instr, args in instrs:
        if instr != "RUN":
            continue
        for cmd in re.split(r"&&|;", args):
            words = cmd.split()
            if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def dpkg_package_of(path):
    """The Debian package owning a file, trying the /usr-merged spellings of its path."""
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        if p.startswith("/usr/lib/"):
            candidates.append(p[len("/usr"):])
        elif p.startswith("/lib/"):
            candidates.append("/usr" + p)
    for p in candidates:
        r = subprocess.run(["dpkg", "-S", p], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
        if r.returncode == 0 and r.stdout.strip():
            line = r.stdout.strip().splitlines()[0]
            return line.split(":", 1)[0].split(",")[0].strip()
    raise AssertionError("no Debian package owns %s (dpkg -S)" % path)


def apt_closure(pkgs):
    """Every package the given packages pull in through Depends/Pre-Depends, recursively."""
    need("apt-cache")
    p = sh(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
            "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + list(pkgs))
    out = set(pkgs)
    for line in p.stdout.splitlines():
        if not line.startswith(" "):
            name = line.strip()
            if name and not name.startswith("<"):
                out.add(name.split(":")[0])
            continue
        m = re.match(r"\s*\|?(?:Pre)?Depends:\s*(\S+)", line)
        if m and not m.group(1).startswith("<"):
            out.add(m.group(1).split(":")[0])
    return out


def essential_packages():
    """Essential packages: present in every Debian image, bookworm-slim included."""
    p = sh(["dpkg-query", "-W", "-f", "${Package} ${Essential}\n"])
    return {l.split()[0] for l in p.stdout.splitlines() if l.endswith(" yes")}


def need_ebsd_bin():
    if not (os.path.isfile(EBSD_BIN) and os.access(EBSD_BIN, os.X_OK)):
        raise AssertionError("EBSD_BIN %r is not a built executable (build target ebsd)" % EBSD_BIN)
    return os.path.abspath(EBSD_BIN)


def unit_directives(path):
    """{key: [values]} of a systemd unit file (all sections)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def seconds(v):
    m = re.fullmatch(r"(\d+)\s*(s|sec)?", v)
    assert m, "not a plain number of seconds: %r" % v
    return int(m.group(1))


# ---- tools on every artefact ---------------------------------------------------------------

def test_tools_installed():
    for cmd in ("yamllint", "systemd-analyze", "shellcheck", "dpkg", "apt-cache", "ldd",
                "readelf", "pkg-config", "node"):
        need(cmd)
    for name in ("dockerfilelint", "dockerfile-utils", "cfn-lint"):
        node_bin(name)
    assert os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@aws-cdk", "cfnspec")), INSTALL_HINT
    yaml_mod()
    try:
        import botocore  # noqa: F401
    except ImportError:
        raise AssertionError("python3-botocore is not installed (%s)" % INSTALL_HINT)


def test_yamllint():
    need("yamllint")
    sh(["yamllint", "--strict", "-c", os.path.join(DEPLOY, "yamllint.yaml"),
        os.path.join(DEPLOY, "kubernetes"), os.path.join(DEPLOY, "cloudformation"),
        os.path.join(DEPLOY, "docker", "ebsd.yaml"), os.path.join(DEPLOY, "systemd", "ebsd.yaml"),
        os.path.join(DEPLOY, "yamllint.yaml")])


def test_systemd_analyze_verify():
    need("systemd-analyze")
    binpath = need_ebsd_bin()
    with open(UNIT) as f:
        text = f.read()
    assert "/usr/local/bin/ebsd " in text
    with tempfile.TemporaryDirectory(prefix="ebsd-unit-") as d:
        unit = os.path.join(d, "ebsd.service")
        with open(unit, "w") as f:
            f.write(text.replace("/usr/local/bin/ebsd ", binpath + " "))
        p = sh(["systemd-analyze", "verify", unit])
        # verify exits 0 on unknown keys and bad values too: any message about the unit fails.
        problems = [l for l in p.stderr.splitlines() if "ebsd.service" in l or unit in l]
        assert not problems, "systemd-analyze verify:\n" + "\n".join(problems)
        # The sandbox must stay tight: exposure at most 2.0 ("OK") in systemd's own scoring.
        sh(["systemd-analyze", "security", "--offline=true", "--threshold=20", unit])


def test_dockerfile_linters():
    p = sh([node_bin("dockerfilelint"), DOCKERFILE])
    assert "Issues: None found" in p.stdout, p.stdout
    p = sh([node_bin("dockerfile-utils"), "lint", DOCKERFILE])
    assert p.stdout.strip() == "", p.stdout


def test_shellcheck():
    need("shellcheck")
    sh(["shellcheck", os.path.join(DEPLOY, "docker", "entrypoint.sh"),
        os.path.join(SOURCE_DIR, "scripts", "deploy-tools")])


def test_cloudformation_validator():
    need("node")
    node_bin("cfn-lint")
    p = sh(["node", os.path.join(NODE_DIR, "cfn-validate.js"), CFN_TEMPLATE])
    assert "valid (CloudFormation resource specification" in p.stdout, p.stdout


def test_cloudformation_validator_rejects_mistakes():
    """The validator is only worth running if it notices a misspelt property or type."""
    with open(CFN_TEMPLATE) as f:
        text = f.read()
    with tempfile.TemporaryDirectory(prefix="ebsd-cfn-") as d:
        for bad in (text.replace("TimeoutInMillis:", "TimeoutInMilis:"),
                    text.replace("AWS::ApiGatewayV2::VpcLink", "AWS::ApiGatewayV2::VpcLinx"),
                    text.replace("HealthCheckIntervalSeconds: 10", "HealthCheckIntervalSeconds: x")):
            assert bad != text
            path = os.path.join(d, "bad.yaml")
            with open(path, "w") as f:
                f.write(bad)
            p = sh(["node", os.path.join(NODE_DIR, "cfn-validate.js"), path], ok_codes=(1,))
            assert "INVALID" in p.stdout, p.stdout


def test_ecs_definitions_match_the_ecs_api():
    """botocore's ECS model: every key and type of RegisterTaskDefinition / CreateService."""
    import botocore.session
    from botocore.validate import ParamValidator
    model = botocore.session.get_session().get_service_model("ecs")
    for path, op in ((TASK_DEF, "RegisterTaskDefinition"), (ECS_SERVICE, "CreateService")):
        with open(path) as f:
            params = json.load(f)
        report = ParamValidator().validate(params, model.operation_model(op).input_shape)
        assert not report.has_errors(), "%s: %s" % (path, report.generate_report())


def test_deployed_configs_pass_check_config():
    binpath = need_ebsd_bin()
    for layer, text in ebsd_config_texts().items():
        path = None
        try:
            fd, path = tempfile.mkstemp(prefix="ebsd-%s-" % layer, suffix=".yaml")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            p = subprocess.run([binpath, "--check-config", path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
            assert p.returncode == 0, "%s config rejected by ebsd --check-config (%d):\n%s" % (
                layer, p.returncode, p.stdout)
        finally:
            if path:
                os.unlink(path)


# ---- the container image, by construction --------------------------------------------------

def test_dockerfile_structure():
    stages = dockerfile_stages()
    assert len(stages) == 2, [s[0] for s in stages]
    assert re.fullmatch(r"debian:bookworm AS build", stages[0][0]), stages[0][0]
    assert stages[1][0] == "debian:bookworm-slim", stages[1][0]
    runtime = stages[1][1]
    instr = {}
    for i, a in runtime:
        instr.setdefault(i, []).append(a)
    user = instr["USER"][-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "runtime USER must be a numeric non-root uid: %s" % user
    assert instr["STOPSIGNAL"] == ["SIGTERM"]
    port = timeouts(ebsd_configs()["docker"])["port"]
    assert instr["EXPOSE"] == [str(port)], instr["EXPOSE"]
    hc = instr["HEALTHCHECK"][0]
    assert "http://127.0.0.1:%d/healthz" % port in hc, hc
    pkgs = apt_installed(runtime)
    assert "curl" in pkgs, "HEALTHCHECK runs curl: the runtime stage must install it"
    assert not [p for p in pkgs if p.endswith("-dev") or p in ("build-essential", "gcc", "cmake")], pkgs
    # The baked-in config is where the entrypoint looks by default.
    assert "EBSD_CONFIG=/etc/ebsd/ebsd.yaml" in instr["ENV"], instr["ENV"]
    assert "deploy/docker/ebsd.yaml /etc/ebsd/ebsd.yaml" in instr["COPY"], instr["COPY"]
    # The Kubernetes pod and the ECS task run as the image's user.
    k8s = k8s_objects()[("Deployment", "ebsd")]["spec"]["template"]["spec"]["securityContext"]
    assert k8s["runAsUser"] == int(user)
    with open(TASK_DEF) as f:
        assert json.load(f)["containerDefinitions"][0]["user"].split(":")[0] == user


def test_build_stage_installs_every_dev_package_cmake_needs():
    need("pkg-config")
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        cmake = f.read()
    modules = re.findall(r"pkg_check_modules\(\s*\w+\s+(?:REQUIRED\s+)?(?:IMPORTED_TARGET\s+)?([\w.+-]+)",
                         cmake)
    assert modules, "no pkg_check_modules found in CMakeLists.txt"
    build_pkgs = set(apt_installed(dockerfile_stages()[0][1]))
    for mod in modules:
        pc = sh(["pkg-config", "--path", mod]).stdout.strip()
        pkg = dpkg_package_of(pc)
        assert pkg in build_pkgs, "CMake needs %s (%s) but the build stage does not install it" % (
            mod, pkg)
    if "find_package(OpenSSL" in cmake:
        assert "libssl-dev" in build_pkgs


def test_runtime_packages_cover_ldd():
    """Every library `ldd ebsd` loads comes with the runtime stage: the packages of the binary's
    own NEEDED entries are named on its apt-get line, and everything they load in turn is in
    the Depends closure of that line plus the Essential set every Debian image has."""
    need("ldd")
    need("readelf")
    binpath = need_ebsd_bin()
    runtime_pkgs = apt_installed(dockerfile_stages()[1][1])
    allowed_direct = set(runtime_pkgs) | {"libc6"}
    allowed_all = apt_closure(sorted(set(runtime_pkgs) | essential_packages()))

    ldd = sh(["ldd", binpath]).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            sh(["readelf", "-d", binpath]).stdout))
    sanitizer = re.compile(r"^lib(asan|ubsan|lsan|tsan)\.so")
    # What the sanitizer runtimes pull in (libstdc++ for libasan) is not the Release image's
    # concern either, unless ebsd itself needs it.
    sanitizer_deps = set()
    for path in re.findall(r"(/\S*lib(?:asan|ubsan|lsan|tsan)\.so\S*)", ldd):
        sanitizer_deps |= set(re.findall(r"^\s*(\S+) => ", sh(["ldd", path]).stdout, re.M))
    checked = []
    for line in ldd.splitlines():
        line = line.strip()
        assert "not found" not in line, "ldd: %s" % line
        m = re.match(r"(\S+) => (/\S+)", line) or re.match(r"()(/\S+) \(0x", line)
        if not m:
            continue  # linux-vdso: in the kernel, not a file
        soname, path = m.group(1) or os.path.basename(m.group(2)), m.group(2)
        if sanitizer.match(soname) or (soname in sanitizer_deps and soname not in needed):
            print("     note: %s comes from a sanitizer build, not the image's Release build" % soname)
            continue
        pkg = dpkg_package_of(path)
        if soname in needed:
            assert pkg in allowed_direct, (
                "ebsd links %s from package %s, which the runtime stage's apt-get line lacks "
                "(it installs: %s)" % (soname, pkg, " ".join(runtime_pkgs)))
        assert pkg in allowed_all, (
            "%s (package %s) is loaded but nothing in the runtime stage pulls it in" % (soname, pkg))
        checked.append("%s=%s" % (soname, pkg))
    assert checked, "ldd listed no libraries for %s" % binpath
    print("     checked: " + ", ".join(checked))


def test_entrypoint_takes_config_from_file_or_environment():
    entry = os.path.join(DEPLOY, "docker", "entrypoint.sh")
    with tempfile.TemporaryDirectory(prefix="ebsd-entry-") as d:
        stub = os.path.join(d, "ebsd")
        with open(stub, "w") as f:
            f.write('#!/bin/sh\nprintf "%s\\n" "$@"\necho ---\ncat "$2"\n')
        os.chmod(stub, 0o755)
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EBSD_BIN": stub, "TMPDIR": d}
        # From the environment: written under $TMPDIR (the root filesystem is read-only).
        env = dict(base, EBSD_CONFIG_YAML='listen: "0.0.0.0:9999"')
        out = sh([entry, "--version"], env=env).stdout.splitlines()
        assert out[:3] == ["--config", os.path.join(d, "ebsd.yaml"), "--version"], out
        assert out[-1] == 'listen: "0.0.0.0:9999"', out
        assert oct(os.stat(os.path.join(d, "ebsd.yaml")).st_mode & 0o777) == "0o600"
        # From a mounted file.
        cfg = os.path.join(d, "mounted.yaml")
        with open(cfg, "w") as f:
            f.write("listen: mounted\n")
        out = sh([entry], env=dict(base, EBSD_CONFIG=cfg)).stdout.splitlines()
        assert out[:2] == ["--config", cfg] and out[-1] == "listen: mounted", out


# ---- values every layer must agree on ------------------------------------------------------

def test_deployed_configs_agree():
    cfgs = ebsd_configs()
    values = {layer: timeouts(cfg) for layer, cfg in cfgs.items()}
    first = values["docker"]
    for layer, v in values.items():
        assert v == first, "ebsd config of %s %r differs from docker's %r" % (layer, v, first)
        assert cfgs[layer].get("log", {}).get("format") == "json", \
            "%s: log.format must be json for log shippers" % layer
    # ebsd's own invariants, which the other layers rely on.
    assert first["drain_timeout_s"] < 30
    assert first["max_timeout_ms"] <= HTTP_API_MAX_TIMEOUT_MS


def test_kubernetes_values():
    objs = k8s_objects()
    t = timeouts(ebsd_configs()["kubernetes"])
    dep = objs[("Deployment", "ebsd")]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (c,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": t["port"]}, ports

    def resolve(port):
        return ports[port] if isinstance(port, str) else port

    # Probes: readiness on /readyz, liveness (and startup) on /healthz, all on ebsd's port.
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert resolve(c[probe]["httpGet"]["port"]) == t["port"], probe

    # Service -> pods on the listen port.
    svc = objs[("Service", "ebsd")]
    assert svc["spec"]["selector"].items() <= labels.items()
    (sp,) = svc["spec"]["ports"]
    assert resolve(sp["targetPort"]) == t["port"], sp

    # Grace period: preStop sleep, then SIGTERM and ebsd's drain, must fit.
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre[0] == "sleep"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > int(pre[1]) + t["drain_timeout_s"], (grace, pre, t)

    # Security.
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]

    # Config: the ConfigMap key is mounted where EBSD_CONFIG points.
    env = {e["name"]: e.get("value") for e in c["env"]}
    cfg_path = env["EBSD_CONFIG"]
    mount = [m for m in c["volumeMounts"] if m["mountPath"] == os.path.dirname(cfg_path)]
    assert mount, c["volumeMounts"]
    vol = [v for v in pod["volumes"] if v["name"] == mount[0]["name"]][0]
    assert vol["configMap"]["name"] == "ebsd-config"
    assert os.path.basename(cfg_path) in objs[("ConfigMap", "ebsd-config")]["data"]
    assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), "writable /tmp for the entrypoint"

    # IRSA.
    sa = objs[("ServiceAccount", "ebsd")]
    assert pod["serviceAccountName"] == "ebsd"
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+",
                        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"])

    # Autoscaling and disruption.
    hpa = objs[("HorizontalPodAutoscaler", "ebsd")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "ebsd"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = objs[("PodDisruptionBudget", "ebsd")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "PDB would block node drains"

    # Everything is in one namespace, and kustomization lists every manifest.
    assert {o["metadata"].get("namespace") for o in objs.values() if o["kind"] != "Namespace"} == {"ebsd"}
    kdir = os.path.join(DEPLOY, "kubernetes")
    kust = load_yaml_docs(os.path.join(kdir, "kustomization.yaml"))[0]
    files = sorted(f for f in os.listdir(kdir) if f.endswith(".yaml") and f != "kustomization.yaml")
    assert sorted(kust["resources"]) == files, (kust["resources"], files)


def test_ecs_values():
    t = timeouts(ebsd_configs()["ecs"])
    with open(TASK_DEF) as f:
        td = json.load(f)
    assert td["networkMode"] == "awsvpc"
    assert td["taskRoleArn"].startswith("arn:aws:iam::")
    (c,) = td["containerDefinitions"]
    assert [p["containerPort"] for p in c["portMappings"]] == [t["port"]]
    hc = " ".join(c["healthCheck"]["command"])
    assert "http://127.0.0.1:%d/healthz" % t["port"] in hc, hc
    assert c["stopTimeout"] > t["drain_timeout_s"], (c["stopTimeout"], t)
    assert c["stopTimeout"] <= 120, "Fargate caps stopTimeout at 120 s"
    assert c["logConfiguration"]["logDriver"] == "awslogs"
    assert c["readonlyRootFilesystem"] is True
    assert c["user"].split(":")[0] not in ("0", "root")
    assert any(m["containerPath"] == "/tmp" and not m["readOnly"] for m in c["mountPoints"])
    with open(ECS_SERVICE) as f:
        svc = json.load(f)
    (lb,) = svc["loadBalancers"]
    assert lb["containerName"] == c["name"] and lb["containerPort"] == t["port"]


def test_iam_policy_has_exactly_the_two_read_actions():
    with open(IAM_POLICY) as f:
        pol = json.load(f)
    assert pol["Version"] == "2012-10-17"
    actions = []
    for st in pol["Statement"]:
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        a = st["Action"]
        actions += [a] if isinstance(a, str) else a
    assert sorted(actions) == ["ec2:DescribeInstances", "ec2:DescribeVolumes"], actions


def test_cloudformation_values():
    tpl = load_cfn(CFN_TEMPLATE)
    res = tpl["Resources"]
    cfgs = ebsd_configs()

    def of_type(t):
        found = [r["Properties"] for r in res.values() if r["Type"] == t]
        assert len(found) == 1, "expected one %s, found %d" % (t, len(found))
        return found[0]

    def attrs(items):
        return {a["Key"]: a["Value"] for a in items}

    alb = of_type("AWS::ElasticLoadBalancingV2::LoadBalancer")
    alb_idle = int(attrs(alb["LoadBalancerAttributes"])["idle_timeout.timeout_seconds"])
    tg = of_type("AWS::ElasticLoadBalancingV2::TargetGroup")
    dereg = int(attrs(tg["TargetGroupAttributes"])["deregistration_delay.timeout_seconds"])
    integ = of_type("AWS::ApiGatewayV2::Integration")
    apigw_ms = int(integ["TimeoutInMillis"])
    tg_port = tpl["Parameters"][tg["Port"]["Ref"]]["Default"]

    assert tg["HealthCheckPath"] == "/healthz"
    assert tg["HealthCheckTimeoutSeconds"] < tg["HealthCheckIntervalSeconds"]
    assert apigw_ms <= HTTP_API_MAX_TIMEOUT_MS
    for layer, cfg in cfgs.items():
        t = timeouts(cfg)
        assert tg_port == t["port"], (layer, tg_port, t)
        # The ALB closes idle connections before ebsd does (else: 502 on a reused connection).
        assert alb_idle < t["idle_timeout_s"], (layer, alb_idle, t)
        # ... but never cuts off a request ebsd is still allowed to work on.
        assert alb_idle * 1000 > t["max_timeout_ms"], (layer, alb_idle, t)
        # API Gateway waits at least as long as ebsd may work, so ebsd's own 504 arrives.
        assert apigw_ms >= t["max_timeout_ms"], (layer, apigw_ms, t)
        # Deregistration lets the longest request finish.
        assert dereg * 1000 >= t["max_timeout_ms"], (layer, dereg, t)

    assert integ["IntegrationType"] == "HTTP_PROXY" and integ["ConnectionType"] == "VPC_LINK"
    routes = [r["Properties"]["RouteKey"] for r in res.values() if r["Type"] == "AWS::ApiGatewayV2::Route"]
    assert "GET /volumes/total" in routes and "GET /instances/{instance_id}/volumes" in routes
    for private in ("/healthz", "/readyz", "/metrics", "$default", "ANY /{proxy+}"):
        assert not [r for r in routes if r.endswith(private)], "%s must not be public: %s" % (private, routes)


def test_systemd_unit_values():
    u = unit_directives(UNIT)
    t = timeouts(ebsd_configs()["systemd"])
    assert u["Type"] == ["notify"] and u["NotifyAccess"] == ["main"]
    assert u["ExecStart"] == ["/usr/local/bin/ebsd --config /etc/ebsd/ebsd.yaml"]
    assert "/bin/kill -HUP $MAINPID" in u["ExecReload"]
    assert u["KillSignal"] == ["SIGTERM"]
    assert seconds(u["TimeoutStopSec"][0]) > t["drain_timeout_s"]
    assert u["Restart"] == ["on-failure"] and u["RestartPreventExitStatus"] == ["2"]
    assert u["DynamicUser"] == ["yes"] and u["NoNewPrivileges"] == ["yes"]
    assert u["ProtectSystem"] == ["strict"]
    assert u["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert "@system-service" in u["SystemCallFilter"]
    assert any(v.startswith("~") and "@privileged" in v for v in u["SystemCallFilter"])
    assert u["CapabilityBoundingSet"] == [""]
    # the size hint's state file lives in the unit's own persistent, private directory
    assert u["StateDirectory"] == ["ebsd"] and u["StateDirectoryMode"] == ["0700"]
    with open(os.path.join(DEPLOY, "systemd", "ebsd.yaml")) as f:
        assert yaml_mod().safe_load(f)["fanout"]["state_file"] == "/var/lib/ebsd/sizehint.json"


def test_deploy_doc_timeout_table_matches():
    """docs/DEPLOY.md's table of timeouts shows the values deploy/ actually sets."""
    with open(DEPLOY_DOC) as f:
        doc = f.read()
    rows = {}
    for line in doc.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    tpl = load_cfn(CFN_TEMPLATE)
    res = tpl["Resources"]
    t = timeouts(ebsd_configs()["docker"])
    alb = [r["Properties"] for r in res.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"][0]
    integ = [r["Properties"] for r in res.values() if r["Type"] == "AWS::ApiGatewayV2::Integration"][0]
    with open(TASK_DEF) as f:
        stop = json.load(f)["containerDefinitions"][0]["stopTimeout"]
    grace = k8s_objects()[("Deployment", "ebsd")]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    expect = {
        "API Gateway integration timeout": "%d ms" % int(integ["TimeoutInMillis"]),
        "ALB idle timeout": "%s s" % {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}[
            "idle_timeout.timeout_seconds"],
        "ebsd keep-alive (server.idle_timeout_s)": "%d s" % t["idle_timeout_s"],
        "ebsd request maximum (routes.max_timeout_ms)": "%d ms" % t["max_timeout_ms"],
        "ebsd drain (server.drain_timeout_s)": "%d s" % t["drain_timeout_s"],
        "ECS stopTimeout": "%d s" % stop,
        "Kubernetes terminationGracePeriodSeconds": "%d s" % grace,
    }
    for row, value in expect.items():
        assert row in rows, "docs/DEPLOY.md timeout table lacks the row %r" % row
        assert rows[row][1] == value, "docs/DEPLOY.md says %s = %r, deploy/ sets %r" % (
            row, rows[row][1], value)


run(globals())
