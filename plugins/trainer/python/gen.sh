#!/bin/sh
# Regenerates the Python side's protobuf and gRPC code, committed beside
# it, with Debian's tools (apt: protobuf-compiler python3-grpc-tools):
# messages by protoc, services by grpc_tools' plugin. Run from anywhere:
#   sh plugins/trainer/python/gen.sh
set -eu
cd "$(dirname "$0")"
protos=../../../schemas/hearth/plugin/trainer/v1
protoc -I"$protos" -I. --python_out=. trainer.proto health.proto
/usr/bin/python3 -m grpc_tools.protoc -I"$protos" -I. --grpc_python_out=. trainer.proto health.proto
