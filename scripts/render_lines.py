"""Render template.yaml's older runtime lines from the folders under layer/lines/.

    python scripts/render_lines.py          # rewrite the lines' part of template.yaml
    python scripts/render_lines.py --check  # exit 1 when template.yaml is stale

Each folder layer/lines/<minor>/ (its requirements.txt) is a line: a layer built from it, a
validator function, a predict function, and their log groups, written between the markers
below; and OLDER_LINES, which tells register and the front predict function which lines there
are. Adding a line is adding its folder and running `make lines`; a test fails when the
template is stale.
"""

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
LINES_DIR = REPO_ROOT / "layer" / "lines"
BEGIN = "  # BEGIN runtime lines: rendered by `make lines` from layer/lines/; do not edit by hand\n"
END = "  # END runtime lines\n"
OLDER_LINES = re.compile(r'^(\s+OLDER_LINES: )"[^"\n]*"$', re.MULTILINE)

LINE = """\
  {id}Layer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      Description: The registry package and scikit-learn {minor}'s stack (layer/lines/{minor}/)
      ContentUri: layer/
      CompatibleRuntimes: [python3.12]
      CompatibleArchitectures: [x86_64]
      RetentionPolicy: Delete
    Metadata:
      BuildMethod: makefile
      BuildArchitecture: x86_64

  # Validates artifacts saved with scikit-learn {minor}: as ValidateFunction, on this line's layer.
  {id}ValidateFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/validate/
      FunctionName: !Sub "${{AWS::StackName}}-validate-{dashed}"
      Description: Loads and describes scikit-learn {minor} artifacts for register; writes nothing
      MemorySize: 2048
      Timeout: 20
      Tracing: Disabled
      Role: !GetAtt ValidateFunctionRole.Arn
      ReservedConcurrentExecutions: !Ref RegisterReservedConcurrency
      Layers: [!Ref {id}Layer]
      Environment:
        Variables:
          POWERTOOLS_SERVICE_NAME: validate

  {id}ValidateFunctionLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub "/aws/lambda/${{AWS::StackName}}-validate-{dashed}"
      RetentionInDays: !Ref LogRetentionDays

  # Predicts versions of scikit-learn {minor} that the front resolved; no route reaches it.
  {id}PredictFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/predict/
      Handler: line.lambda_handler
      FunctionName: !Sub "${{AWS::StackName}}-predict-{dashed}"
      Description: Predicts scikit-learn {minor} versions for the front predict function
      Layers: [!Ref {id}Layer]
      Environment:
        Variables:
          POWERTOOLS_SERVICE_NAME: predict
          REGISTRY_URI: !Sub
            - "s3://${{Bucket}}/registry"
            - Bucket: !If [CreateBucket, !Ref RegistryBucket, !Ref ExistingBucketName]
          CACHE_MAX_BYTES: !Ref CacheMaxBytes
          MAX_INSTANCES: !Ref MaxInstances
          NATIVE_THREADS: !Ref NativeThreads
      Policies:
        - Statement:
            - Sid: ReadTheRegistryPrefix
              Effect: Allow
              Action: s3:GetObject
              Resource: !Sub
                - "arn:${{AWS::Partition}}:s3:::${{Bucket}}/registry/*"
                - Bucket: !If [CreateBucket, !Ref RegistryBucket, !Ref ExistingBucketName]

  {id}PredictFunctionLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub "/aws/lambda/${{AWS::StackName}}-predict-{dashed}"
      RetentionInDays: !Ref LogRetentionDays
"""


def minor_key(minor: str) -> tuple[int, ...]:
    return tuple(int(part) for part in minor.split("."))


def older_lines(lines_dir: Path = LINES_DIR) -> list[str]:
    """The lines with a folder, newest first."""
    found = [path.parent.name for path in lines_dir.glob("*/requirements.txt")]
    return sorted(found, key=minor_key, reverse=True)


def logical_id(minor: str) -> str:
    """Line18 of 1.8, Line110 of 1.10 (a logical ID is letters and digits)."""
    return "Line" + minor.replace(".", "")


def render_template(template: str, lines: list[str]) -> str:
    start, end = template.index(BEGIN) + len(BEGIN), template.index(END)
    block = "\n".join(
        LINE.format(id=logical_id(minor), minor=minor, dashed=minor.replace(".", "-"))
        for minor in lines
    )
    rendered = template[:start] + block + template[end:]
    return OLDER_LINES.sub(rf'\g<1>"{" ".join(lines)}"', rendered)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if template.yaml is stale")
    args = parser.parse_args()
    template = TEMPLATE_PATH.read_text()
    rendered = render_template(template, older_lines())
    if args.check:
        if rendered != template:
            print("template.yaml's runtime lines are stale: run `make lines`", file=sys.stderr)
            return 1
        return 0
    TEMPLATE_PATH.write_text(rendered)
    print(f"rendered the lines {', '.join(older_lines())} into {TEMPLATE_PATH.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
