"""gRPC health and server reflection, as generic clients (grpcurl, grpc-health-probe, load balancers) expect.

grpcio-health-checking's aio servicer leaves `Health/List` unimplemented though its proto
advertises it, and grpcio-reflection only ships the deprecated `v1alpha` reflection service.
`grpc.reflection.v1` is the same protocol under a new package name (every message and field
number is unchanged), so the library's servicer answers both; its descriptor is derived from
v1alpha's here so that reflection can describe the v1 service too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


class HealthServicer(health_aio.HealthServicer):  # type: ignore[misc]  # the library is untyped
    """The library's aio servicer, plus `List`: every service with a status, and that status."""

    async def List(  # noqa: N802 - the name is the RPC's
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        statuses = {
            name: health_pb2.HealthCheckResponse(status=status) for name, status in dict(self._server_status).items()
        }
        return health_pb2.HealthListResponse(statuses=statuses)


def add_health(server: grpc.aio.Server) -> HealthServicer:
    servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def add_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Serve reflection for `service_names` (and both reflection services) under v1 and v1alpha."""
    _register_v1_descriptor()
    names = [*service_names, reflection.SERVICE_NAME, REFLECTION_V1]
    servicer = reflection_aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        # v1 and v1alpha messages are the same bytes on the wire.
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": info}),)
    )


def _register_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return  # already there (a later grpcio-reflection, or a second server in this process)
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name, proto.package = _V1_FILE, "grpc.reflection.v1"
    proto.ClearField("options")  # v1alpha's are its own: Java/Go package names and `deprecated`
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:  # set only on message-typed fields
                field.type_name = field.type_name.replace(old, new, 1)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new, 1)
            method.output_type = method.output_type.replace(old, new, 1)
    pool.AddSerializedFile(proto.SerializeToString())
