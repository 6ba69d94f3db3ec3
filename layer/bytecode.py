"""Ship bytecode for what the handlers import, so a cold start does not compile it.

Lambda's /opt is read-only, so a layer without `__pycache__` is compiled from source at
every cold start. This step, run by layer/Makefile after slim.py, finds the modules the
functions import on their real paths by running them: the three handlers are imported and
real models (the blog's forest as joblib and skops, served from their compiled forms, a
LogisticRegression as skops, and a DataFrame pipeline with string categories, missing
values and HistGradientBoosting, unpickled) are loaded and predict, in a
python3.12 whose path starts with the built layer. Every module that came from the layer
is then compiled into its `__pycache__` as an unchecked hash-based .pyc (PEP 552): its
validity is never checked against the source's timestamp, which zipping changes. The rest
of the layer (code no handler reaches) stays source only.

The Lambda runtime brings boto3, so the layer leaves it out; the handlers need it to run
here. Any python3.12 on PATH does (a plain `sam build`): the packages the runtime provides,
pinned by RUNTIME_PROVIDED_REQUIREMENTS, are installed into a temporary folder that follows
the layer on the path, and none of them is compiled into the layer.

Prints how many modules it compiled and their bytes. Usage:
    python3.12 bytecode.py LAYER_PYTHON_DIR FUNCTIONS_DIR RUNTIME_PROVIDED_REQUIREMENTS
"""

import json
import py_compile
import subprocess
import sys
import tempfile
from importlib.util import cache_from_source
from pathlib import Path

# Trains the example models in a process of its own, so fitting code is not traced.
TRAIN = r"""
import io, sys
import joblib, numpy, pandas, skops.io
from sklearn.compose import make_column_transformer
from sklearn.datasets import make_moons
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

out = sys.argv[1]
features, labels = make_moons(n_samples=200, noise=0.3, random_state=0)
forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(features, labels)
joblib.dump(forest, f"{out}/forest.joblib")
skops.io.dump(forest, f"{out}/forest.skops")
skops.io.dump(LogisticRegression().fit(features, labels), f"{out}/linear.skops")
table = pandas.DataFrame(features, columns=["x", "y"])
table["side"] = numpy.where(features[:, 0] > 0.5, "east", "west")
table.loc[::7, "y"] = None
pipeline = make_pipeline(
    make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["side"]), (SimpleImputer(), ["x", "y"])
    ),
    HistGradientBoostingClassifier(max_iter=5),
).fit(table, labels)
joblib.dump(pipeline, f"{out}/pipeline.joblib")
"""

# Serves the models through the real handlers, as the functions do (register with the local
# validator, then predict), after importing what the validator and its zygote import.
TRACE = r"""
import base64, importlib, importlib.util, json, os, sys
layer, functions, models = sys.argv[1:4]
os.environ["REGISTRY_URI"] = os.path.join(models, "registry")

def function(name):
    spec = importlib.util.spec_from_file_location(f"{name}_app", f"{functions}/{name}/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

register, predict = function("register"), function("predict")
# the validator and its zygote, with all the zygote imports
import registry.inspecting.worker, registry.inspecting.isolation, registry.inspecting.sandbox
registry.inspecting.sandbox.preload(registry.inspecting.isolation.SandboxMeasures())

class Context:
    function_name = "trace"; memory_limit_in_mb = 1024; aws_request_id = "trace"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:trace"

def call(app, method, path, body, query=None):
    event = {"httpMethod": method, "path": path, "resource": path, "headers": {},
             "queryStringParameters": query, "body": json.dumps(body),
             "requestContext": {"requestId": "trace", "identity": {}}}
    answer = app.lambda_handler(event, Context())
    assert answer["statusCode"] in (200, 201), answer["body"][:500]

rows = [{"x": 0.5, "y": 0.2, "side": "east"}, {"x": 1.5, "y": None, "side": "west"}]
for name, file, instances in (("forest", "forest.joblib", [[0.5, 0.2]]),
                              ("forest-skops", "forest.skops", [[0.5, 0.2]]),
                              ("linear-skops", "linear.skops", [[0.5, 0.2]]),
                              ("pipeline", "pipeline.joblib", rows)):
    artifact = base64.b64encode(open(f"{models}/{file}", "rb").read()).decode()
    call(register, "POST", "/models", {"name": name, "artifact": artifact})
    body = {"instances": instances, "probabilities": True}
    call(predict, "POST", "/predict", body, {"model": name})
print(json.dumps(sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())})))
"""


def traced_modules(layer: Path, functions: Path, runtime_provided: Path) -> list[Path]:
    """The .py files under the layer that the handlers' real paths import."""
    with tempfile.TemporaryDirectory() as models, tempfile.TemporaryDirectory() as provided:
        install = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*install, "--target", provided, "-r", str(runtime_provided)], check=True)
        env = _layer_env(layer, Path(provided))
        subprocess.run([sys.executable, "-c", TRAIN, models], check=True, env=env)
        done = subprocess.run(
            [sys.executable, "-c", TRACE, str(layer), str(functions), models],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
    files = [Path(name) for name in json.loads(done.stdout.splitlines()[-1]) if name]
    return sorted(
        path
        for path in files
        if path.suffix == ".py" and path.resolve().is_relative_to(layer.resolve())
    )


def _layer_env(layer: Path, runtime_provided: Path) -> dict[str, str]:
    # The layer first, then what the Lambda runtime provides (boto3), as on Lambda.
    return {
        "PYTHONPATH": f"{layer}:{runtime_provided}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": "/usr/bin:/bin",
    }


def compile_unchecked(sources: list[Path]) -> int:
    """Compile each source next to it; returns the bytes of .pyc written."""
    written = 0
    for source in sources:
        target = cache_from_source(str(source))
        py_compile.compile(
            str(source),
            cfile=target,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        written += Path(target).stat().st_size
    return written


def main() -> None:
    layer, functions, runtime_provided = (Path(argument) for argument in sys.argv[1:4])
    sources = traced_modules(layer, functions, runtime_provided)
    written = compile_unchecked(sources)
    print(f"bytecode: {len(sources)} modules the handlers import, {written:,} bytes of .pyc")


if __name__ == "__main__":
    main()
