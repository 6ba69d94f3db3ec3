"""The deployed capture path in SAM's transform of template.yaml: predict's log group, a
subscription filter, a Firehose stream that unzips and extracts natively (no Lambda) and
partitions by model and version, and roles that may do only that."""

import json
from datetime import UTC, datetime
from typing import Any

import jq

from registry.capture import Captured, hour_prefix, record_line
from tests.support.cloudformation import actions_of, resources_of, statements_of


def stream(cloudformation: dict[str, Any]) -> dict[str, Any]:
    return resources_of(cloudformation, "AWS::KinesisFirehose::DeliveryStream")[
        "CaptureDeliveryStream"
    ]


def test_predicts_log_group_is_subscribed_to_the_stream_by_a_role_that_may_only_put_records(
    cloudformation: dict[str, Any],
) -> None:
    (subscription,) = resources_of(cloudformation, "AWS::Logs::SubscriptionFilter").values()
    assert subscription["LogGroupName"] == {"Ref": "PredictFunctionLogGroup"}
    assert subscription["DestinationArn"] == {"Fn::GetAtt": ["CaptureDeliveryStream", "Arn"]}
    role = resources_of(cloudformation, "AWS::IAM::Role")["CaptureSubscriptionRole"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "logs.amazonaws.com"
    }
    (statement,) = statements_of(role)
    assert sorted(actions_of(statement)) == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    assert statement["Resource"] == {"Fn::GetAtt": ["CaptureDeliveryStream", "Arn"]}
    predict = cloudformation["Resources"]["PredictFunction"]["Properties"]
    variables = predict["Environment"]["Variables"]
    assert variables["CAPTURE_TO"] == "log"
    assert variables["CAPTURE_SAMPLE_PERCENT"] == {"Ref": "CaptureSamplePercent"}


def test_firehose_unzips_and_extracts_natively_and_partitions_by_model_version_and_hour(
    cloudformation: dict[str, Any],
) -> None:
    destination = stream(cloudformation)["ExtendedS3DestinationConfiguration"]
    processors = destination["ProcessingConfiguration"]["Processors"]
    assert [processor["Type"] for processor in processors] == [
        "Decompression",
        "CloudWatchLogProcessing",
        "MetadataExtraction",
        "AppendDelimiterToRecord",
    ]  # no Lambda processor: nothing of ours runs on the way
    parameters = [
        {parameter["ParameterName"]: parameter["ParameterValue"] for parameter in p["Parameters"]}
        for p in processors
    ]
    assert parameters[0] == {"CompressionFormat": "GZIP"}
    assert parameters[1] == {"DataMessageExtraction": "true"}
    assert parameters[3] == {"Delimiter": "\\n"}
    assert destination["DynamicPartitioningConfiguration"]["Enabled"] is True

    # The partition query, run by jq on a real record, gives the keys the prefix uses, and the
    # prefix is where registry/capture.py reads
    captured = Captured(
        event_id="e", time=datetime(2026, 12, 4, 9, tzinfo=UTC), model="churn", version=7,
        alias=None, routing_key="e", rows=[{"x": 1.0}], predictions=[0], probabilities=None,
        classes=None,
    )  # fmt: skip
    record = json.loads(record_line(captured))
    query = parameters[2]["MetadataExtractionQuery"]
    keys = jq.compile(query).input_value(record).first()
    assert keys == {"model": "churn", "version": "7"}
    assert parameters[2]["JsonParsingEngine"] == "JQ-1.6"
    prefix = destination["Prefix"]
    for name, value in keys.items():
        prefix = prefix.replace(f"!{{partitionKeyFromQuery:{name}}}", value)
    for field, text in (("yyyy", "2026"), ("MM", "12"), ("dd", "04"), ("HH", "09")):
        prefix = prefix.replace(f"!{{timestamp:{field}}}", text)
    assert prefix == "registry/" + hour_prefix("churn", 7, captured.time)
    assert destination["FileExtension"] == ".jsonl.gz"
    assert destination["CompressionFormat"] == "GZIP"


def test_the_stream_is_encrypted_and_writes_only_the_capture_prefixes(
    cloudformation: dict[str, Any],
) -> None:
    properties = stream(cloudformation)
    assert properties["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    role = resources_of(cloudformation, "AWS::IAM::Role")["CaptureDeliveryRole"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "firehose.amazonaws.com"
    }
    for statement in statements_of(role):
        actions = set(actions_of(statement))
        resource = json.dumps(statement["Resource"])
        if "s3:PutObject" in actions:
            assert actions == {"s3:PutObject", "s3:AbortMultipartUpload"}
            assert "/registry/capture/*" in resource and "/registry/capture-errors/*" in resource
            assert "/registry/*" not in resource
        elif "logs:PutLogEvents" in actions:
            assert statement["Resource"] == {"Fn::GetAtt": ["CaptureDeliveryLogGroup", "Arn"]}
        else:
            assert actions <= {
                "s3:GetBucketLocation",
                "s3:ListBucket",
                "s3:ListBucketMultipartUploads",
            }
            assert statement["Resource"]["Fn::Sub"][0].endswith(":::${Bucket}")  # no objects


def test_captured_predictions_expire_from_a_bucket_the_stack_creates(
    cloudformation: dict[str, Any],
) -> None:
    bucket = cloudformation["Resources"]["RegistryBucket"]["Properties"]
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    rule = rules["ExpireCapturedPredictions"]
    assert rule["Prefix"] == "registry/capture/"
    assert rule["ExpirationInDays"] == {"Ref": "CaptureRetentionDays"}
