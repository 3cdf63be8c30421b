"""Run moto's server with DynamoDB requests serialised and SQS redrive added.

moto_server handles requests on threads, and its DynamoDB backend does not
lock items: two concurrent UpdateItem ADD calls on one counter can both
read the old value, so one increment is lost. Real DynamoDB applies each
write atomically. This launcher serves the same application as
moto_server, but lets one DynamoDB request run at a time, so conditional
writes and atomic counters behave as they do on AWS; SQS long polls and
every other service stay concurrent.

Its TransactWriteItems undoes a failed transaction by restoring the items
it wrote, not by copying every table the transaction names first (moto's
way, which made each transaction as slow as the table is large).

It also counts requests, so benchmarks can report AWS calls per dispatch
and per delivery: by X-Amz-Target (GET /_posse/calls answers the counts as
JSON), and by caller, service and operation (GET /_posse/calls/detail; POST
/_posse/calls/reset zeroes both). The caller is the application id the AWS
SDKs put in their User-Agent (app/<id>; the local stack names each function
with AWS_SDK_UA_APP_ID), the service is the signing name in the request's
SigV4 credential scope, and the operation is the X-Amz-Target action or,
for the REST APIs (EventBridge Scheduler), the route's operation name.
Counting here rather than in a proxy keeps one process, one port and one
endpoint for every client, and sees exactly the requests moto answers.

And it adds the three SQS actions moto lacks (it answers 500 to them), the
ones the SQS console's "Start DLQ redrive" calls: StartMessageMoveTask,
ListMessageMoveTasks and CancelMessageMoveTask, as the SQS API Reference
documents them. They are methods added to moto's own SQSResponse, so moto
parses the request and serialises the answer and the errors in whichever
protocol the caller used (AWS JSON with X-Amz-Target: AmazonSQS.<Action>,
as the SDKs and the CLI send, or the query protocol, Action=<Action>).
Every other request goes to moto unchanged. A move task runs in a thread
of this process and works on moto's backend objects directly (receive from
the dead-letter queue, send to the destination keeping body and message
attributes, delete from the dead-letter queue), the way moto's own
dead-letter move does. Where AWS answers an error, the code and message
are AWS's, as recorded against AWS in LocalStack's validated snapshots
(tests/aws/services/sqs/test_sqs_move_task.snapshot.json).

Usage: python serve.py -H 127.0.0.1 -p 4566
"""

import argparse
import base64
import binascii
import collections
import copy
import io
import json
import re
import signal
import sys
import threading
import time
import uuid

from werkzeug.serving import run_simple

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.core.utils import get_service_model
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.utilities import bytesize
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sqs.exceptions import QueueDoesNotExist, SQSException
from moto.sqs.models import Queue, SQSBackend, sqs_backends
from moto.sqs.responses import SQSResponse

# ------------------------------------------------- the model moto answers by

# moto serialises answers and errors from botocore's SQS model plus its own
# extras for the query protocol, and neither knows these actions fully.
# What is added here is what AWS's model says (the one the Go SDK is
# generated from): ResourceNotFoundException is HTTP 404 (moto would say
# 400), UnsupportedOperation's query error code is
# AWS.SimpleQueueService.UnsupportedOperation, and in the query protocol the
# results are wrapped in <ActionResult> and each listed task is a
# <ListMessageMoveTasksResultEntry>, as moto's extras do for the other actions.
_ERROR_TRAITS = {
    "ResourceNotFoundException": {"code": "ResourceNotFoundException", "httpStatusCode": 404, "senderFault": True},
    "UnsupportedOperation": {"code": "AWS.SimpleQueueService.UnsupportedOperation", "httpStatusCode": 400, "senderFault": True},
}
_ACTIONS = ("StartMessageMoveTask", "ListMessageMoveTasks", "CancelMessageMoveTask")


def _complete_sqs_model():
    model = get_service_model("sqs")
    shapes = model._shape_resolver._shape_map
    for name, traits in _ERROR_TRAITS.items():
        shapes[name].setdefault("error", traits)
    for action in _ACTIONS:
        model._service_description["operations"][action]["output"].setdefault("resultWrapper", action + "Result")
    entry = shapes["ListMessageMoveTasksResultEntryList"]["member"]
    entry.setdefault("locationNameForQueryCompatibility", "ListMessageMoveTasksResultEntry")


def _invalid(message):
    return SQSException("InvalidParameterValue", message)


def _not_found(message):
    return SQSException("ResourceNotFoundException", message)


# ------------------------------------------- where a dead letter came from

# AWS remembers the queue a message was dead-lettered from (the
# DeadLetterQueueSourceArn system attribute) and a redrive "to source"
# sends each message back there. moto moves the same Message object into
# the dead-letter queue inside ReceiveMessage on the source queue, without
# noting the source; these two wrappers note it on the object.
_ORIGIN = "posse_dead_letter_source_arn"
_receiving = threading.local()
_moto_receive = SQSBackend.receive_message
_moto_add = Queue.add_message


def _receive_noting_source(self, queue_name, *args, **kwargs):
    previous = getattr(_receiving, "queue", None)
    _receiving.queue = self.queues.get(queue_name)
    try:
        return _moto_receive(self, queue_name, *args, **kwargs)
    finally:
        _receiving.queue = previous


def _add_noting_source(self, message):
    source = getattr(_receiving, "queue", None)
    if source is not None and source.dead_letter_queue is self:
        setattr(message, _ORIGIN, source.queue_arn)
    return _moto_add(self, message)


SQSBackend.receive_message = _receive_noting_source
Queue.add_message = _add_noting_source

# ------------------------------------------------------------ move tasks

RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED = "RUNNING", "COMPLETED", "CANCELLING", "CANCELLED", "FAILED"
# FailureReason when a message's source queue cannot be told (AWS's wording
# for this case could not be confirmed).
_NO_SOURCE = "CouldNotDetermineMessageSource"
_NON_EXISTENT = "AWS.SimpleQueueService.NonExistentQueue"
# How long a received dead letter stays hidden while it is being moved.
_HOLD_SECONDS = 60

_tasks_lock = threading.Lock()
_tasks = collections.defaultdict(list)  # source ARN -> its tasks, oldest first


def _queue_for_arn(arn, parameter):
    """Returns (backend, queue) for a queue ARN, or raises AWS's error."""
    parts = (arn or "").split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
        raise _invalid(f"Value {arn} for parameter {parameter} is invalid. Reason: not an SQS queue ARN.")
    region, account, name = parts[3], parts[4], parts[5]
    try:
        backend = sqs_backends[account][region]
    except (KeyError, ValueError):
        backend = None
    queue = backend.queues.get(name) if backend is not None else None
    if queue is None or queue.queue_arn != arn:
        raise _not_found(f"The resource that you specified for the {parameter} parameter doesn't exist.")
    return backend, queue


def _source_queues(backend, dlq):
    """The queues whose RedrivePolicy names dlq and that the DLQ's
    RedriveAllowPolicy lets use it: allowAll (the default) any, denyAll
    none, byQueue those listed in sourceQueueArns."""
    policy = getattr(dlq, "redrive_allow_policy", None)
    if isinstance(policy, str):
        try:
            policy = json.loads(policy) if policy else None
        except ValueError:
            policy = None
    permission = (policy or {}).get("redrivePermission", "allowAll")
    allowed = set((policy or {}).get("sourceQueueArns") or [])
    out = []
    for q in list(backend.queues.values()):
        target = (getattr(q, "redrive_policy", None) or {}).get("deadLetterTargetArn")
        if target != dlq.queue_arn:
            continue
        if permission == "denyAll" or permission == "byQueue" and q.queue_arn not in allowed:
            continue
        out.append(q)
    return out


class _MoveFailed(Exception):
    """Ends a task as FAILED with a FailureReason."""


class MoveTask:
    """One StartMessageMoveTask: its answers and the thread that moves."""

    def __init__(self, backend, source, destination, rate):
        self.id = str(uuid.uuid4())
        self.backend = backend
        self.source = source
        self.destination = destination  # None: each message back to its source queue
        self.rate = rate  # messages a second, None: as fast as it goes
        # AWS's handle is base64 of {"taskId", "sourceArn"}, so Cancel finds the source.
        self.handle = base64.b64encode(
            json.dumps({"taskId": self.id, "sourceArn": source.queue_arn}, separators=(",", ":")).encode()
        ).decode()
        self.status = RUNNING
        self.failure = None
        self.moved = 0
        self.to_move = source.approximate_number_of_messages
        self.started_ms = int(time.time() * 1000)
        self.cancel = threading.Event()

    def entry(self):
        """The task as a ListMessageMoveTasks result entry."""
        e = {
            "Status": self.status,
            "SourceArn": self.source.queue_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.destination is not None:
            e["DestinationArn"] = self.destination.queue_arn
        if self.rate is not None:
            e["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.status == RUNNING:
            e["TaskHandle"] = self.handle
        if self.status == FAILED:
            e["FailureReason"] = self.failure
        return e

    def start(self):
        threading.Thread(target=self._run, name="move-" + self.id, daemon=True).start()

    def _run(self):
        held = []
        try:
            began = time.monotonic()
            while self.moved < self.to_move and not self.cancel.is_set():
                want = min(10, self.to_move - self.moved, self.rate or 10)
                held = self.backend.receive_message(self.source.name, want, 0, _HOLD_SECONDS, ["All"])
                if not held:
                    break
                while held:
                    if self.rate is not None:
                        # Pace: the n-th message (from 0) leaves at n/rate seconds.
                        wait = began + self.moved / self.rate - time.monotonic()
                        if wait > 0 and self.cancel.wait(wait):
                            break
                    if self.cancel.is_set():
                        break
                    self._move(held[0])
                    held.pop(0)
                    self.moved += 1
            self.status = CANCELLED if self.cancel.is_set() else COMPLETED
        except _MoveFailed as e:
            self.failure, self.status = str(e), FAILED
        except QueueDoesNotExist:
            self.failure, self.status = _NON_EXISTENT, FAILED
        except Exception as e:  # noqa: BLE001 - a task must end, and say why
            self.failure, self.status = type(e).__name__, FAILED
        finally:
            self._release(held)

    def _move(self, m):
        dest = self.destination or self._origin_of(m)
        self.backend.send_message(
            dest.name,
            m.body,
            message_attributes=m.message_attributes,
            system_attributes={k: v for k, v in (m.system_attributes or {}).items() if k == "AWSTraceHeader"},
        )
        self.backend.delete_message(self.source.name, m.receipt_handle)

    def _origin_of(self, m):
        """The queue a dead letter goes back to: the one it was
        dead-lettered from, else the DLQ's only source queue."""
        sources = _source_queues(self.backend, self.source)
        origin = getattr(m, _ORIGIN, None)
        if origin is not None:
            for q in sources:
                if q.queue_arn == origin:
                    return q
            if origin.split(":")[-1] not in self.backend.queues:
                raise _MoveFailed(_NON_EXISTENT)
        if len(sources) == 1:
            return sources[0]
        raise _MoveFailed(_NO_SOURCE)

    def _release(self, held):
        """Makes received but unmoved messages visible again."""
        for m in held:
            try:
                self.backend.change_message_visibility(self.source.name, m.receipt_handle, 0)
            except Exception:  # noqa: BLE001 - deleted or gone: nothing to release
                pass


def _decode_handle(handle):
    try:
        doc = json.loads(base64.b64decode(handle or "", validate=True))
        return doc["taskId"], doc["sourceArn"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _invalid("Value for parameter TaskHandle is invalid.")


def start_message_move_task(self):
    source_arn = self._get_param("SourceArn")
    backend, source = _queue_for_arn(source_arn, "SourceArn")
    destination = None
    if self._get_param("DestinationArn"):
        _, destination = _queue_for_arn(self._get_param("DestinationArn"), "DestinationArn")
    rate = self._get_param("MaxNumberOfMessagesPerSecond")
    if rate is not None and not 1 <= int(rate) <= 500:
        raise _invalid(
            f"Value {rate} for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: must be between 1 and 500."
        )
    if not _source_queues(backend, source):
        raise _invalid("Source queue must be configured as a Dead Letter Queue.")
    if source.fifo_queue or destination is not None and destination.fifo_queue:
        raise SQSException("UnsupportedOperation", "This local stand-in moves messages of standard queues only.")
    task = MoveTask(backend, source, destination, None if rate is None else int(rate))
    with _tasks_lock:
        if any(t.status in (RUNNING, CANCELLING) for t in _tasks[source_arn]):
            raise _invalid(
                "There is already a task running. Only one active task is allowed for a source queue arn at a given time."
            )
        _tasks[source_arn].append(task)
    task.start()
    return ActionResult({"TaskHandle": task.handle})


def list_message_move_tasks(self):
    source_arn = self._get_param("SourceArn")
    _queue_for_arn(source_arn, "SourceArn")
    limit = self._get_param("MaxResults")
    limit = 1 if limit is None else int(limit)
    if not 1 <= limit <= 10:
        raise _invalid(f"Value {limit} for parameter MaxResults is invalid. Reason: must be between 1 and 10.")
    with _tasks_lock:
        newest_first = list(reversed(_tasks.get(source_arn, [])))[:limit]
    return ActionResult({"Results": [t.entry() for t in newest_first]})


def cancel_message_move_task(self):
    task_id, source_arn = _decode_handle(self._get_param("TaskHandle"))
    _queue_for_arn(source_arn, "SourceArn")
    with _tasks_lock:
        task = next((t for t in _tasks.get(source_arn, []) if t.id == task_id), None)
        if task is None or task.status != RUNNING:
            raise _not_found("Task does not exist.")
        task.status = CANCELLING
        task.cancel.set()
        moved = task.moved
    return ActionResult({"ApproximateNumberOfMessagesMoved": moved})


SQSResponse.start_message_move_task = start_message_move_task
SQSResponse.list_message_move_tasks = list_message_move_tasks
SQSResponse.cancel_message_move_task = cancel_message_move_task


def _forget_tasks():
    """Cancels and forgets every move task (moto's reset drops the queues)."""
    with _tasks_lock:
        for tasks in _tasks.values():
            for t in tasks:
                t.cancel.set()
        _tasks.clear()


# ------------------------------------- TransactWriteItems without table copies

# TransactWriteItems without a copy of the whole table.
#
# moto's DynamoDB backend makes a deep copy of every table a transaction
# names, once per item of the transaction, so it can roll back: a transaction
# costs time in proportion to the table's size times its items. The local
# stack's table grows with every delivery, event and counter, so its
# transactions (every delivery's outcome with its event, every dispatch's
# snapshot and deliveries) slowed down run after run, and a measurement of
# throughput measured moto's copies.
#
# This version keeps moto's semantics (the same checks, the same errors and
# cancellation reasons, in the same order) and differs only in how it undoes:
# it checks every condition first, writes nothing unless all hold, and keeps a
# copy of each item it is about to write, restoring those items if a write
# fails. serve.py runs one DynamoDB request at a time, so nothing can change
# the items between the checks and the writes.


def _slot(table, key):
    """The hash and range key values of key in table, as moto indexes items."""
    h = DynamoType(key[table.hash_key_attr])
    r = DynamoType(key[table.range_key_attr]) if table.range_key_attr is not None else None
    return h, r


def _restore(table, h, r, saved):
    """Put back the item at (h, r) as saved (None: there was none)."""
    if r is not None:
        if saved is None:
            table.items.get(h, {}).pop(r, None)
        else:
            table.items[h][r] = saved
    elif saved is None:
        table.items.pop(h, None)
    else:
        table.items[h] = saved


def transact_write_items(self, transact_items):
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen = set()
    ops = []  # (op_type, op, table, key)
    errors = []
    failed = False
    for item in transact_items:
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        original_item = None
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            table = self.get_table(table_name)
            if op_type == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            unique = (str(table_name), str(dict(sorted(key.items()))))
            if unique in seen:
                raise MultipleTransactionsException()
            seen.add(unique)
            ops.append((op_type, op, table, key))
            condition = op.get("ConditionExpression")
            if condition is not None:
                current = self.get_item(table_name, key)
                check = get_filter_expression(condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues"))
                if not check.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise
        except ConditionalCheckFailed as e:
            failed = True
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # noqa: BLE001 - moto reports any other error as the item's reason
            failed = True
            errors.append((type(e).__name__, str(e), original_item))
    if failed:
        raise TransactionCanceledException(errors)

    saved = []
    try:
        for i, (op_type, op, table, key) in enumerate(ops):
            if op_type == "ConditionCheck":
                continue
            h, r = _slot(table, key)
            saved.append((table, h, r, copy.deepcopy(table.get_item(h, r))))
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(op["TableName"], op["Item"], expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(op["TableName"], key, expression_attribute_names=names, expression_attribute_values=values)
            else:
                self.update_item(op["TableName"], key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names, expression_attribute_values=values)
    except MockValidationException:
        for table, h, r, item in reversed(saved):
            _restore(table, h, r, item)
        raise
    except Exception as e:  # noqa: BLE001 - as moto: the failing item's reason, the others none
        for table, h, r, item in reversed(saved):
            _restore(table, h, r, item)
        reasons = [(None, None, None)] * len(transact_items)
        reasons[i] = (type(e).__name__, str(e), None)
        raise TransactionCanceledException(reasons)


DynamoDBBackend.transact_write_items = transact_write_items


# ------------------------------------------------------------ call counts

_APP_ID = re.compile(r"(?:^|\s)app/([^\s]+)")
_SCOPE = re.compile(r"Credential=[^/]+/[0-9]{8}/[^/]+/([^/]+)/aws4_request")
_SCOPE_REGION = re.compile(r"Credential=[^/]+/[0-9]{8}/([^/]+)/")
# EventBridge Scheduler's REST routes: (method, first path segment, has a
# name) -> operation, as the Scheduler API Reference names them.
_SCHEDULER_ROUTES = {
    ("POST", "schedules", True): "CreateSchedule",
    ("GET", "schedules", True): "GetSchedule",
    ("PUT", "schedules", True): "UpdateSchedule",
    ("DELETE", "schedules", True): "DeleteSchedule",
    ("GET", "schedules", False): "ListSchedules",
    ("POST", "schedule-groups", True): "CreateScheduleGroup",
    ("GET", "schedule-groups", True): "GetScheduleGroup",
    ("DELETE", "schedule-groups", True): "DeleteScheduleGroup",
    ("GET", "schedule-groups", False): "ListScheduleGroups",
}


def call_key(environ):
    """(caller, service, operation) of one request."""
    m = _APP_ID.search(environ.get("HTTP_USER_AGENT", ""))
    caller = m.group(1) if m else "unnamed"
    m = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = m.group(1) if m else "unsigned"
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return caller, service, target.rsplit(".", 1)[-1]
    parts = [p for p in environ.get("PATH_INFO", "").split("/") if p]
    method = environ.get("REQUEST_METHOD", "")
    if service == "scheduler" and parts:
        op = _SCHEDULER_ROUTES.get((method, parts[0], len(parts) > 1))
        if op:
            return caller, service, op
    return caller, service, method + " /" + (parts[0] if parts else "")


# ------------------------------------------- DynamoDB request units

# On-demand DynamoDB bills request units, not requests (Developer Guide,
# "Read/write capacity mode" and "Managing settings on DynamoDB provisioned
# capacity tables"): a read is 1 RRU per 4 KB of the item, half of that
# when eventually consistent, rounded up per item (Query and Scan: on the
# sum of the items returned); a write is 1 WRU per 1 KB of the larger of
# the item before and after, rounded up per item; a write whose condition
# fails still costs; every item of a transaction costs twice. Item sizes
# are DynamoDB's (attribute names plus values), as moto computes them.


def _item_size(wire_item):
    return sum(bytesize(k) + DynamoType(v).size() for k, v in (wire_item or {}).items())


def _stored_size(region, table, key):
    try:
        item = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_item(table, key)
    except Exception:  # noqa: BLE001 - no table, bad key: nothing stored
        return 0
    return item.size() if item is not None else 0


def _ceil(n, unit):
    return max(1, -(-n // unit))


class DynamoUnits:
    """Counts the request units of one DynamoDB request: before() reads the
    sizes of the items a write touches, after() adds the units."""

    def __init__(self, region, op, req):
        self.region, self.op, self.req = region, op, req
        self.writes = []  # (table, key, size before, size of the new item or None)

    def before(self):
        op, req = self.op, self.req
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            key = req.get("Key") if op != "PutItem" else self._key_of(req.get("TableName"), req.get("Item"))
            new = _item_size(req.get("Item")) if op == "PutItem" else None
            self.writes.append((req.get("TableName"), key, 1, new))
        elif op == "BatchWriteItem":
            for table, reqs in (req.get("RequestItems") or {}).items():
                for r in reqs:
                    if "PutRequest" in r:
                        item = r["PutRequest"].get("Item")
                        self.writes.append((table, self._key_of(table, item), 1, _item_size(item)))
                    elif "DeleteRequest" in r:
                        self.writes.append((table, r["DeleteRequest"].get("Key"), 1, None))
        elif op == "TransactWriteItems":
            for t in req.get("TransactItems") or []:
                for kind, body in t.items():
                    table = body.get("TableName")
                    if kind == "Put":
                        item = body.get("Item")
                        self.writes.append((table, self._key_of(table, item), 2, _item_size(item)))
                    else:  # Update, Delete, ConditionCheck
                        self.writes.append((table, body.get("Key"), 2, None))
        self.writes = [(t, k, f, n, _stored_size(self.region, t, k) if k else 0) for t, k, f, n in self.writes]

    def _key_of(self, table, item):
        try:
            t = dynamodb_backends[DEFAULT_ACCOUNT_ID][self.region].get_table(table)
        except Exception:  # noqa: BLE001
            return None
        names = [t.hash_key_attr] + ([t.range_key_attr] if t.has_range_key else [])
        item = item or {}
        return {n: item[n] for n in names if n in item}

    def after(self, resp):
        """(read units, write units) given the parsed answer."""
        op, req = self.op, self.req
        rru = wru = 0.0
        for table, key, factor, new, old in self.writes:
            now = new if new is not None else (_stored_size(self.region, table, key) if key else 0)
            wru += factor * _ceil(max(old, now), 1024)
        half = lambda consistent: 1.0 if consistent else 0.5  # noqa: E731
        if op == "GetItem":
            rru += half(req.get("ConsistentRead")) * _ceil(_stored_size(self.region, req.get("TableName"), req.get("Key")), 4096)
        elif op == "BatchGetItem":
            for table, spec in (req.get("RequestItems") or {}).items():
                for key in spec.get("Keys") or []:
                    rru += half(spec.get("ConsistentRead")) * _ceil(_stored_size(self.region, table, key), 4096)
        elif op == "TransactGetItems":
            for t in req.get("TransactItems") or []:
                g = t.get("Get") or {}
                rru += 2 * _ceil(_stored_size(self.region, g.get("TableName"), g.get("Key")), 4096)
        elif op in ("Query", "Scan"):
            total = sum(_item_size(i) for i in (resp or {}).get("Items") or [])
            rru += half(req.get("ConsistentRead")) * _ceil(total, 4096)
        return rru, wru


# ---------------------------------------------------------------- server


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()

    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    _complete_sqs_model()
    app = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()
    counted = threading.Lock()
    calls = collections.Counter()
    detail = collections.Counter()
    units = collections.defaultdict(lambda: [0.0, 0.0])  # call key -> [read units, write units]

    def answer(start_response, doc):
        body = json.dumps(doc).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def serialised(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        path = environ.get("PATH_INFO", "")
        if path == "/_posse/calls":
            with counted:
                return answer(start_response, dict(calls))
        if path == "/_posse/calls/detail":
            with counted:
                rows = []
                for (c, s, o), n in sorted(detail.items()):
                    row = {"caller": c, "service": s, "operation": o, "count": n}
                    if (c, s, o) in units:
                        row["readUnits"], row["writeUnits"] = units[(c, s, o)]
                    rows.append(row)
            return answer(start_response, rows)
        if path == "/_posse/calls/reset" and environ.get("REQUEST_METHOD") == "POST":
            with counted:
                calls.clear()
                detail.clear()
                units.clear()
            return answer(start_response, {})
        if path == "/moto-api/reset":
            _forget_tasks()
        key = None
        if not path.startswith("/moto-api/"):
            key = call_key(environ)
            with counted:
                detail[key] += 1
        if target:
            with counted:
                calls[target] += 1
        if target.startswith("DynamoDB_"):
            with dynamodb:
                return _dynamodb_counted(environ, start_response, key)
        return app(environ, start_response)

    def _dynamodb_counted(environ, start_response, key):
        """Serves one DynamoDB request (under the lock) and adds its
        request units to key's."""
        try:
            n = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            n = -1
        req = {}
        if n >= 0:  # a body of unknown length (chunked) is left to moto, uncounted
            raw = environ["wsgi.input"].read(n)
            environ["wsgi.input"] = io.BytesIO(raw)
            try:
                req = json.loads(raw or b"{}")
            except ValueError:
                req = {}
        m = _SCOPE_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
        counter = DynamoUnits(m.group(1) if m else "us-east-1", key[2] if key else "", req if isinstance(req, dict) else {})
        try:
            counter.before()
        except Exception:  # noqa: BLE001 - counting must never break a request
            counter = None
        status = []

        def capture(s, headers, exc_info=None):
            status.append(s)
            return start_response(s, headers, exc_info)

        out = list(app(environ, capture))
        body = b"".join(out)
        ok = status and status[0].startswith("200")
        billed_failure = not ok and (b"ConditionalCheckFailed" in body or b"TransactionCanceled" in body)
        if counter is not None and key is not None and (ok or billed_failure):
            try:
                resp = json.loads(body) if ok and key[2] in ("Query", "Scan") else None
                r, w = counter.after(resp)
            except Exception:  # noqa: BLE001
                r = w = 0.0
            with counted:
                units[key][0] += r
                units[key][1] += w
        return out

    run_simple(args.host, args.port, serialised, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
