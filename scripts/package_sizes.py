"""Print each built function's unzipped size with its layers; exit 1 over the budget.

Lambda refuses a function whose code and layers unzip to more than 262,144,000
bytes; we keep each under 80% of that (pandas joined the runtime, then the bytecode of
what the handlers import), to leave room.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry.http.gateway import REPO_ROOT, load_template

BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
LAMBDA_UNZIPPED_LIMIT = 262_144_000
BUDGET_PERCENT = 80
BUDGET = LAMBDA_UNZIPPED_LIMIT * BUDGET_PERCENT // 100


def tree_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def function_sizes(build_dir: Path = BUILD_DIR) -> dict[str, tuple[int, dict[str, int]]]:
    """{function: (code bytes, {layer: bytes})}, read from the built template."""
    template = load_template(build_dir / "template.yaml")
    resources = template["Resources"]
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    sizes = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        # A layer is `!Ref Name` in our template and {"Ref": "Name"} once SAM rewrote it.
        names = [
            layer if isinstance(layer, str) else layer["Ref"]
            for layer in properties.get("Layers", global_layers)
        ]
        layers = {
            layer: tree_bytes(build_dir / resources[layer]["Properties"]["ContentUri"])
            for layer in names
        }
        sizes[name] = (tree_bytes(build_dir / properties["CodeUri"]), layers)
    return sizes


def main() -> int:
    over = False
    for function, (code, layers) in function_sizes().items():
        total = code + sum(layers.values())
        parts = ", ".join(f"{layer} {size:,}" for layer, size in layers.items())
        share = 100 * total / LAMBDA_UNZIPPED_LIMIT
        print(
            f"{function}: {total:,} bytes unzipped ({share:.1f}% of Lambda's limit): "
            f"code {code:,}, {parts}"
        )
        over |= total > BUDGET
    print(f"budget: {BUDGET:,} bytes each ({BUDGET_PERCENT}% of {LAMBDA_UNZIPPED_LIMIT:,})")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
