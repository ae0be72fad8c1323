"""Checks of deploy/ that need Python's tools, run by tests/deploy.rs (one subcommand each):

  lint              cfn-lint on the template, statelint on the state machine
  processing-job    the Processing job definition against botocore's CreateProcessingJob
                    model: required and unknown members, types, enums, patterns, bounds
  walk              each exit code of the pipeline's task through the state machine's
                    Choice, Retry and Catch rules, by a small interpreter of the States
                    Language subset it uses
  iam POLICY VALUES the template's task role statements, with VALUES (JSON: parameter ->
                    value) substituted, against POLICY (`fengine plan --iam-policy`)

Prints what is wrong and exits 1.
"""

import json
import os
import re
import subprocess
import sys

import regex

DEPLOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy")


def path(name):
    return os.path.join(DEPLOY, name)


def lint():
    for command in (
        ["cfn-lint", path("feature-store.yaml")],
        ["statelint", path("state-machine.asl.json")],
    ):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)}: {done.stdout}{done.stderr}")


# --- the Processing job against botocore's model ---------------------------------------


def processing_job():
    import botocore.loaders

    model = botocore.loaders.Loader().load_service_model("sagemaker", "service-2")
    shapes = model["shapes"]
    request = shapes[model["operations"]["CreateProcessingJob"]["input"]["shape"]]
    with open(path("processing-job.json")) as f:
        job = json.load(f)
    problems = []
    check_value(job, request, shapes, "CreateProcessingJob", problems)
    if problems:
        sys.exit("\n".join(problems))


def check_value(value, shape, shapes, at, problems):
    kind = shape["type"]
    if kind == "structure":
        if not isinstance(value, dict):
            return problems.append(f"{at}: expected an object")
        for name in shape.get("required", []):
            if name not in value:
                problems.append(f"{at}: {name} is required")
        for name, member in value.items():
            if name not in shape["members"]:
                problems.append(f"{at}: {name} is not a member")
                continue
            target = shapes[shape["members"][name]["shape"]]
            check_value(member, target, shapes, f"{at}.{name}", problems)
    elif kind == "list":
        if not isinstance(value, list):
            return problems.append(f"{at}: expected a list")
        check_bounds(len(value), shape, at, problems)
        for i, item in enumerate(value):
            check_value(item, shapes[shape["member"]["shape"]], shapes, f"{at}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            return problems.append(f"{at}: expected an object")
        check_bounds(len(value), shape, at, problems)
        for key, item in value.items():
            check_value(key, shapes[shape["key"]["shape"]], shapes, f"{at} key {key}", problems)
            check_value(item, shapes[shape["value"]["shape"]], shapes, f"{at}.{key}", problems)
    elif kind == "string":
        if not isinstance(value, str):
            return problems.append(f"{at}: expected a string")
        check_bounds(len(value), shape, at, problems)
        if "enum" in shape and value not in shape["enum"]:
            problems.append(f"{at}: '{value}' is not one of {shape['enum']}")
        # The model's patterns are Java's, matched against the whole value (\p{L} and the
        # like: the regex module reads them).
        if "pattern" in shape and not regex.fullmatch(shape["pattern"], value):
            problems.append(f"{at}: '{value}' does not match {shape['pattern']}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return problems.append(f"{at}: expected an integer")
        check_bounds(value, shape, at, problems)
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{at}: expected a boolean")
    else:
        problems.append(f"{at}: a {kind} member, which this check does not know")


def check_bounds(n, shape, at, problems):
    if "min" in shape and n < shape["min"]:
        problems.append(f"{at}: {n} is below the minimum {shape['min']}")
    if "max" in shape and n > shape["max"]:
        problems.append(f"{at}: {n} is above the maximum {shape['max']}")


# --- the state machine, walked ---------------------------------------------------------

EXECUTION = {"Name": "daily-2024-04-01", "StartTime": "2024-04-01T02:00:00.481Z"}


def get(document, json_path, context=None):
    """A value at a JSONPath of the forms the state machine uses: $.a.b[0].c, $$.Execution.x."""
    root, rest = (context, json_path[2:]) if json_path.startswith("$$") else (document, json_path[1:])
    for part in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", rest):
        name, index = part
        if name:
            if not isinstance(root, dict) or name not in root:
                raise KeyError(json_path)
            root = root[name]
        else:
            root = root[int(index)]
    return root


def present(document, json_path):
    try:
        get(document, json_path)
        return True
    except (KeyError, IndexError, TypeError):
        return False


def intrinsic(text, document, context):
    """Evaluates an intrinsic function call (States.X(...)), a path or a literal."""
    value, rest = parse_argument(text.strip(), document, context)
    if rest.strip():
        raise ValueError(f"cannot read '{text}'")
    return value


def parse_argument(text, document, context):
    text = text.lstrip()
    if text.startswith("'"):
        end = text.index("'", 1)
        return text[1:end], text[end + 1 :]
    if text.startswith("$"):
        match = re.match(r"\$\$?[A-Za-z0-9_.\[\]]*", text)
        return get(document, match.group(0), context), text[match.end() :]
    match = re.match(r"-?\d+", text)
    if match:
        return int(match.group(0)), text[match.end() :]
    match = re.match(r"States\.([A-Za-z]+)\(", text)
    if not match:
        raise ValueError(f"cannot read '{text}'")
    name, rest, args = match.group(1), text[match.end() :], []
    while not rest.lstrip().startswith(")"):
        value, rest = parse_argument(rest, document, context)
        args.append(value)
        rest = rest.lstrip()
        if rest.startswith(","):
            rest = rest[1:]
    rest = rest.lstrip()[1:]
    functions = {
        "Format": lambda template, *values: template.replace("{}", "\0").replace("\0", "{}").format(*values),
        "Array": lambda *values: list(values),
        "ArrayGetItem": lambda array, i: array[i],
        "StringSplit": lambda s, sep: s.split(sep),
        "StringToJson": json.loads,
        "MathAdd": lambda a, b: a + b,
    }
    return functions[name](*args), rest


def parameters(template, document, context):
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = intrinsic(value, document, context) if value.startswith("States.") else get(document, value, context)
            else:
                out[key] = parameters(value, document, context)
        return out
    if isinstance(template, list):
        return [parameters(v, document, context) for v in template]
    return template


def put(document, result_path, value):
    if result_path == "$":
        return value
    document = json.loads(json.dumps(document))
    parts = result_path[2:].split(".")
    target = document
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return document


def rule_matches(rule, document):
    if "And" in rule:
        return all(rule_matches(r, document) for r in rule["And"])
    variable = rule["Variable"]
    if "IsPresent" in rule:
        return present(document, variable) == rule["IsPresent"]
    if not present(document, variable):
        return False
    value = get(document, variable)
    if "NumericEquals" in rule:
        return value == rule["NumericEquals"]
    if "NumericLessThan" in rule:
        return value < rule["NumericLessThan"]
    raise ValueError(f"a rule this walk does not know: {rule}")


def walk(machine, outcomes, success_on_exit):
    """Runs the machine; each task attempt takes the next of `outcomes` (an exit code, or the
    name of an error ECS raised). With `success_on_exit`, a task whose container exited is a
    success whatever its code (the other reading of runTask.sync). Returns the end state,
    its type and the commands the task ran."""
    context = {"Execution": EXECUTION}
    outcomes = list(outcomes)
    commands = []
    state_name, document = machine["StartAt"], {}
    for _ in range(100):
        state = machine["States"][state_name]
        kind = state["Type"]
        if kind in ("Succeed", "Fail"):
            return state_name, kind, commands
        if kind == "Pass":
            result = parameters(state["Parameters"], document, context)
            document = put(document, state.get("ResultPath", "$"), result)
            state_name = state["Next"]
        elif kind == "Wait":
            state_name = state["Next"]
        elif kind == "Choice":
            state_name = next(
                (rule["Next"] for rule in state["Choices"] if rule_matches(rule, document)),
                state["Default"],
            )
        elif kind == "Task":
            call = parameters(state["Parameters"], document, context)
            retries = {id(r): 0 for r in state.get("Retry", [])}
            while True:
                outcome = outcomes.pop(0)
                if isinstance(outcome, int):
                    commands.append(call["Overrides"]["ContainerOverrides"][0]["Command"])
                    stopped = {"Containers": [{"Name": "fengine", "ExitCode": outcome}], "StopCode": "EssentialContainerExited"}
                    if outcome == 0 or success_on_exit:
                        result = parameters(state["ResultSelector"], stopped, context)
                        document = put(document, state["ResultPath"], result)
                        state_name = state["Next"]
                        break
                    error, cause = "States.TaskFailed", json.dumps(stopped)
                else:
                    error, cause = outcome, "the task did not start"
                retry = next((r for r in state.get("Retry", []) if error in r["ErrorEquals"]), None)
                if retry is not None and retries[id(retry)] < retry["MaxAttempts"]:
                    retries[id(retry)] += 1
                    continue
                catch = next(c for c in state["Catch"] if error in c["ErrorEquals"] or "States.ALL" in c["ErrorEquals"])
                document = put(document, catch["ResultPath"], {"Error": error, "Cause": cause})
                state_name = catch["Next"]
                break
        else:
            raise ValueError(f"a state type this walk does not know: {kind}")
    raise RuntimeError("the machine did not end in 100 steps")


def walk_exit_codes():
    with open(path("state-machine.asl.json")) as f:
        machine = json.load(f)
    problems = []
    cases = [
        ([0], "Published", "Succeed", 1),
        ([6], "NothingChanged", "Succeed", 1),
        ([4, 0], "Published", "Succeed", 2),
        ([4, 4, 6], "NothingChanged", "Succeed", 3),
        ([4, 4, 4, 4], "RetriesExhausted", "Fail", 4),
        ([1], "RunFailed", "Fail", 1),
        ([2], "RunFailed", "Fail", 1),
        ([3], "RunFailed", "Fail", 1),
        ([5], "RunFailed", "Fail", 1),
        ([137], "RunFailed", "Fail", 1),
        (["ECS.AmazonECSException", 0], "Published", "Succeed", 1),
        (["ECS.AmazonECSException"] * 4, "NotRun", "Fail", 0),
        (["States.Timeout"], "NotRun", "Fail", 0),
    ]
    for success_on_exit in (False, True):
        for outcomes, end, kind, runs in cases:
            got_end, got_kind, commands = walk(machine, outcomes, success_on_exit)
            label = f"{outcomes} (exit codes as {'success' if success_on_exit else 'failure'})"
            if (got_end, got_kind, len(commands)) != (end, kind, runs):
                problems.append(f"{label}: ended in {got_end} ({got_kind}) after {len(commands)} runs, expected {end} ({kind}) after {runs}")
            for command in commands:
                # Every attempt is the same run: one as-of (whole seconds) and one run id.
                expected = ["run", "${PipelinePath}", "--profile", "prod", "--if-changed", "--as-of", "2024-04-01T02:00:00Z", "--run-id", EXECUTION["Name"], "--output", "json"]
                if command != expected:
                    problems.append(f"{label}: ran {command}, expected {expected}")
    if problems:
        sys.exit("\n".join(problems))


# --- the task role against `fengine plan --iam-policy` -------------------------------


def iam(policy_file, values_file):
    from cfnlint.decode import decode

    template, matches = decode(path("feature-store.yaml"))
    if matches:
        sys.exit(f"cannot read the template: {matches}")
    with open(policy_file) as f:
        policy = json.load(f)
    with open(values_file) as f:
        values = json.load(f)
    role = template["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    resolved = resolve(role, values)
    if resolved != policy:
        sys.exit(
            "the template's task role differs from `fengine plan --iam-policy`:\n"
            f"template: {json.dumps(resolved, indent=1)}\nplan: {json.dumps(policy, indent=1)}"
        )


def resolve(node, values):
    """The template node with Fn::Sub, Ref and Fn::GetAtt replaced from `values`."""
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], node["Fn::Sub"])
        if set(node) == {"Ref"}:
            return values[node["Ref"]]
        if set(node) == {"Fn::GetAtt"}:
            return values[".".join(node["Fn::GetAtt"])]
        return {k: resolve(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, values) for v in node]
    return node


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "lint":
        lint()
    elif command == "processing-job":
        processing_job()
    elif command == "walk":
        walk_exit_codes()
    elif command == "iam":
        iam(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown check {command}")
