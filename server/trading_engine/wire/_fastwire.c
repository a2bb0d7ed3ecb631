/*
 * Protocol-buffer wire codec for the two hot-path messages (decision 7).
 *
 *   decode_batch(data)  MLPredictionBatch bytes -> plain tuples (see _fastwire.pyi)
 *   encode_signal(...)  one Decision -> TradingSignal bytes
 *
 * Output follows proto3 canonical form as upb writes it: fields in number
 * order; a scalar equal to its default (+0.0, 0, "") is left out, -0.0 is
 * written; optional and message fields are written when present. The tests in
 * tests/wire hold both functions to the protobuf runtime byte for byte.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if PY_BIG_ENDIAN
#error "doubles are copied as little-endian IEEE 754 bytes"
#endif

static PyObject *DecodeError;
static PyObject *empty_string;

/* ---------------------------------------------------------------- buffers */

typedef struct {
    char *data;
    Py_ssize_t length;
    Py_ssize_t capacity;
} Buffer;

static int buffer_reserve(Buffer *buffer, Py_ssize_t extra) {
    Py_ssize_t needed = buffer->length + extra;
    if (needed <= buffer->capacity) {
        return 0;
    }
    Py_ssize_t capacity = buffer->capacity ? buffer->capacity * 2 : 256;
    while (capacity < needed) {
        capacity *= 2;
    }
    char *data = PyMem_Realloc(buffer->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

static int put_bytes(Buffer *buffer, const char *bytes, Py_ssize_t length) {
    if (buffer_reserve(buffer, length) < 0) {
        return -1;
    }
    memcpy(buffer->data + buffer->length, bytes, (size_t)length);
    buffer->length += length;
    return 0;
}

static int varint_size(uint64_t value) {
    int size = 1;
    while (value >= 0x80) {
        value >>= 7;
        size++;
    }
    return size;
}

static int put_varint(Buffer *buffer, uint64_t value) {
    if (buffer_reserve(buffer, 10) < 0) {
        return -1;
    }
    char *out = buffer->data + buffer->length;
    while (value >= 0x80) {
        *out++ = (char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    *out++ = (char)value;
    buffer->length = out - buffer->data;
    return 0;
}

/* A field key: field number and wire type. */
static int put_key(Buffer *buffer, uint32_t field, uint32_t wire_type) {
    return put_varint(buffer, ((uint64_t)field << 3) | wire_type);
}

static int put_double_always(Buffer *buffer, uint32_t field, double value) {
    if (put_key(buffer, field, 1) < 0 || buffer_reserve(buffer, 8) < 0) {
        return -1;
    }
    memcpy(buffer->data + buffer->length, &value, 8);
    buffer->length += 8;
    return 0;
}

static int put_double(Buffer *buffer, uint32_t field, double value) {
    uint64_t bits;
    memcpy(&bits, &value, 8);
    return bits == 0 ? 0 : put_double_always(buffer, field, value);
}

static int put_int(Buffer *buffer, uint32_t field, long long value) {
    if (value == 0) {
        return 0;
    }
    if (put_key(buffer, field, 0) < 0) {
        return -1;
    }
    return put_varint(buffer, (uint64_t)value);
}

static int put_length_delimited(Buffer *buffer, uint32_t field, const char *payload,
                                Py_ssize_t length) {
    if (put_key(buffer, field, 2) < 0 || put_varint(buffer, (uint64_t)length) < 0) {
        return -1;
    }
    return put_bytes(buffer, payload, length);
}

static int put_string(Buffer *buffer, uint32_t field, PyObject *text) {
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &length);
    if (utf8 == NULL) {
        return -1;
    }
    return length == 0 ? 0 : put_length_delimited(buffer, field, utf8, length);
}

/* Timestamp: seconds floored, nanos in [0, 1e9). Duration: both share the sign. */
static int put_time(Buffer *buffer, uint32_t field, long long nanoseconds, int is_duration) {
    long long seconds, nanos;
    if (is_duration) {
        seconds = nanoseconds / 1000000000LL;
        nanos = nanoseconds % 1000000000LL;
    } else {
        seconds = nanoseconds / 1000000000LL;
        nanos = nanoseconds % 1000000000LL;
        if (nanos < 0) {
            nanos += 1000000000LL;
            seconds -= 1;
        }
    }
    Py_ssize_t length = (seconds ? 1 + varint_size((uint64_t)seconds) : 0) +
                        (nanos ? 1 + varint_size((uint64_t)nanos) : 0);
    if (put_key(buffer, field, 2) < 0 || put_varint(buffer, (uint64_t)length) < 0) {
        return -1;
    }
    return (put_int(buffer, 1, seconds) < 0 || put_int(buffer, 2, nanos) < 0) ? -1 : 0;
}

/* A nested message built in `scratch`, written with its length. */
static int put_message(Buffer *buffer, uint32_t field, Buffer *scratch) {
    return put_length_delimited(buffer, field, scratch->data, scratch->length);
}

/* ----------------------------------------------------- encoding signals */

/*
 * The compiled Python side (signals.py) passes a decision as tuples in field
 * order (see _fastwire.pyi); reading tuple items costs far less than looking
 * attributes up.
 */

static int item_double(PyObject *tuple, Py_ssize_t index, double *out) {
    PyObject *value = PyTuple_GET_ITEM(tuple, index);
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
        return 0;
    }
    *out = PyFloat_AsDouble(value);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static int item_long(PyObject *tuple, Py_ssize_t index, long long *out) {
    *out = PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, index));
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int put_item_double(Buffer *out, uint32_t field, PyObject *tuple, Py_ssize_t index) {
    double value;
    return item_double(tuple, index, &value) < 0 ? -1 : put_double(out, field, value);
}

static int put_item_long(Buffer *out, uint32_t field, PyObject *tuple, Py_ssize_t index) {
    long long value;
    return item_long(tuple, index, &value) < 0 ? -1 : put_int(out, field, value);
}

static int put_item_string(Buffer *out, uint32_t field, PyObject *tuple, Py_ssize_t index) {
    return put_string(out, field, PyTuple_GET_ITEM(tuple, index));
}

static int check_tuple(PyObject *value, Py_ssize_t size, const char *what) {
    if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != size) {
        PyErr_Format(PyExc_TypeError, "%s must be a %zd-tuple", what, size);
        return -1;
    }
    return 0;
}

/* EntryStrategy from (order_type, urgency, reference_price, entry_price, limit_price,
   stop_loss, take_profit, stop_loss_pips, take_profit_pips, lots, risk_amount, legs,
   time_in_force, valid_until_ns, pip_value, risk_budget, size_factor). */
static int encode_entry(Buffer *out, PyObject *entry) {
    if (check_tuple(entry, 17, "entry") < 0) {
        return -1;
    }
    if (put_item_long(out, 1, entry, 0) < 0 || put_item_long(out, 2, entry, 1) < 0) {
        return -1;
    }
    for (Py_ssize_t index = 2; index <= 10; index++) {
        if (put_item_double(out, (uint32_t)index + 1, entry, index) < 0) {
            return -1;
        }
    }
    PyObject *legs = PyTuple_GET_ITEM(entry, 11);
    if (!PyList_Check(legs)) {
        PyErr_SetString(PyExc_TypeError, "legs must be a list");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(legs); i++) {
        PyObject *leg = PyList_GET_ITEM(legs, i);
        double values[3];
        if (check_tuple(leg, 3, "a leg") < 0 || item_double(leg, 0, &values[0]) < 0 ||
            item_double(leg, 1, &values[1]) < 0 || item_double(leg, 2, &values[2]) < 0) {
            return -1;
        }
        /* Three doubles of 9 bytes; with put_varint's 10-byte reservation the
           stack buffer is never outgrown, so it is never reallocated. */
        char payload[64];
        Buffer leg_buffer = {payload, 0, sizeof payload};
        put_double(&leg_buffer, 1, values[0]);
        put_double(&leg_buffer, 2, values[1]);
        put_double(&leg_buffer, 3, values[2]);
        if (put_length_delimited(out, 12, leg_buffer.data, leg_buffer.length) < 0) {
            return -1;
        }
    }
    long long valid_until;
    if (put_item_long(out, 13, entry, 12) < 0 || item_long(entry, 13, &valid_until) < 0 ||
        put_time(out, 14, valid_until, 0) < 0 || put_item_double(out, 15, entry, 14) < 0 ||
        put_item_double(out, 16, entry, 15) < 0 || put_item_double(out, 17, entry, 16) < 0) {
        return -1;
    }
    return 0;
}

/* MarketCondition from (regime, volatility_bps, trend, trend_bps, spread_pips,
   price_age_ns, samples, last_price, favourability); the symbol comes encoded. */
static int encode_market(Buffer *out, PyObject *market, PyObject *symbol_field) {
    double spread;
    long long price_age;
    if (check_tuple(market, 9, "market") < 0 ||
        put_bytes(out, PyBytes_AS_STRING(symbol_field), PyBytes_GET_SIZE(symbol_field)) < 0 ||
        put_item_long(out, 2, market, 0) < 0 || put_item_double(out, 3, market, 1) < 0 ||
        put_item_long(out, 4, market, 2) < 0 || put_item_double(out, 5, market, 3) < 0 ||
        item_double(market, 4, &spread) < 0 ||
        /* An unknown spread (negative) is reported as 0. */
        put_double(out, 6, spread > 0.0 ? spread : 0.0) < 0 ||
        item_long(market, 5, &price_age) < 0 || put_time(out, 7, price_age, 1) < 0 ||
        put_item_long(out, 8, market, 6) < 0 || put_item_double(out, 9, market, 7) < 0 ||
        put_item_double(out, 10, market, 8) < 0) {
        return -1;
    }
    return 0;
}

static int double_size(double value) {
    uint64_t bits;
    memcpy(&bits, &value, 8);
    return bits == 0 ? 0 : 9;
}

static int int_size(long long value) {
    return value == 0 ? 0 : 1 + varint_size((uint64_t)value);
}

/* Unchecked writers: the caller has reserved the room. */
static char *write_varint(char *out, uint64_t value) {
    while (value >= 0x80) {
        *out++ = (char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    *out++ = (char)value;
    return out;
}

static char *write_int(char *out, uint32_t field, long long value) {
    if (value == 0) {
        return out;
    }
    out = write_varint(out, (uint64_t)field << 3);
    return write_varint(out, (uint64_t)value);
}

static char *write_double(char *out, uint32_t field, double value) {
    uint64_t bits;
    memcpy(&bits, &value, 8);
    if (bits == 0) {
        return out;
    }
    out = write_varint(out, ((uint64_t)field << 3) | 1);
    memcpy(out, &value, 8);
    return out + 8;
}

/* DecisionSteps from (rule, outcome, observed, threshold, detail) tuples, or
   RiskAdjustments from (kind, before, after, detail): written straight into
   `out`, each with its length computed first and its room reserved once. */
static int encode_steps(Buffer *out, uint32_t field, PyObject *steps, int with_outcome) {
    if (!PyList_Check(steps)) {
        PyErr_SetString(PyExc_TypeError, "trace and risk adjustments must be lists");
        return -1;
    }
    Py_ssize_t expected = with_outcome ? 5 : 4;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(steps); i++) {
        PyObject *step = PyList_GET_ITEM(steps, i);
        if (check_tuple(step, expected, with_outcome ? "a trace step" : "a risk adjustment") < 0) {
            return -1;
        }
        Py_ssize_t at = 0;
        long long kind, outcome = 0;
        double first, second;
        if (item_long(step, at++, &kind) < 0 ||
            (with_outcome && item_long(step, at++, &outcome) < 0) ||
            item_double(step, at++, &first) < 0 || item_double(step, at++, &second) < 0) {
            return -1;
        }
        Py_ssize_t detail_length;
        const char *detail = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(step, at), &detail_length);
        if (detail == NULL) {
            return -1;
        }
        Py_ssize_t length = int_size(kind) + (with_outcome ? int_size(outcome) : 0) +
                            double_size(first) + double_size(second) +
                            (detail_length ? 1 + varint_size((uint64_t)detail_length) +
                                                 detail_length
                                           : 0);
        /* Key (2 bytes at most for field 19), length, body. */
        if (buffer_reserve(out, 2 + 10 + length) < 0) {
            return -1;
        }
        char *at_out = out->data + out->length;
        uint32_t next = 1;
        at_out = write_varint(at_out, ((uint64_t)field << 3) | 2);
        at_out = write_varint(at_out, (uint64_t)length);
        at_out = write_int(at_out, next++, kind);
        if (with_outcome) {
            at_out = write_int(at_out, next++, outcome);
        }
        at_out = write_double(at_out, next++, first);
        at_out = write_double(at_out, next++, second);
        if (detail_length) {
            at_out = write_varint(at_out, ((uint64_t)next << 3) | 2);
            at_out = write_varint(at_out, (uint64_t)detail_length);
            memcpy(at_out, detail, (size_t)detail_length);
            at_out += detail_length;
        }
        out->length = at_out - out->data;
    }
    return 0;
}

static int put_nested(Buffer *out, uint32_t field, PyObject *value, Buffer *scratch,
                      PyObject *symbol_field) {
    if (value == Py_None) {
        return 0;
    }
    scratch->length = 0;
    int status = symbol_field == NULL ? encode_entry(scratch, value)
                                      : encode_market(scratch, value, symbol_field);
    return status < 0 ? -1 : put_message(out, field, scratch);
}

static int put_optional_double(Buffer *out, uint32_t field, PyObject *value) {
    if (value == Py_None) {
        return 0;
    }
    double number = PyFloat_AsDouble(value);
    return (number == -1.0 && PyErr_Occurred()) ? -1 : put_double_always(out, field, number);
}

/*
 * encode_signal(head, entry, market, adjustments, trace, batch_id_field, symbol_field,
 *               tenant_fields, market_symbol_field, tail_fields) -> bytes
 * head: (signal_id, prediction_id, signal_type, strength, confidence, consensus,
 *        disposition, reason, cancellation_reason, risk_status, risk_level,
 *        pattern_score | None, volume | None)
 */
static PyObject *encode_signal(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "encode_signal takes 10 arguments (see _fastwire.pyi)");
        return NULL;
    }
    PyObject *head = args[0];
    if (check_tuple(head, 13, "head") < 0) {
        return NULL;
    }
    for (int i = 5; i < 10; i++) {
        if (!PyBytes_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "encoded fields must be bytes");
            return NULL;
        }
    }
    Buffer out = {NULL, 0, 0};
    Buffer scratch = {NULL, 0, 0};
    if (buffer_reserve(&out, 1024) < 0) {
        return NULL;
    }
    int failed =
        put_item_string(&out, 1, head, 0) < 0 || put_item_string(&out, 2, head, 1) < 0 ||
        put_bytes(&out, PyBytes_AS_STRING(args[5]), PyBytes_GET_SIZE(args[5])) < 0 ||
        put_bytes(&out, PyBytes_AS_STRING(args[6]), PyBytes_GET_SIZE(args[6])) < 0 ||
        put_bytes(&out, PyBytes_AS_STRING(args[7]), PyBytes_GET_SIZE(args[7])) < 0 ||
        put_item_long(&out, 8, head, 2) < 0 || put_item_double(&out, 9, head, 3) < 0 ||
        put_item_double(&out, 10, head, 4) < 0 || put_item_double(&out, 11, head, 5) < 0 ||
        put_item_long(&out, 12, head, 6) < 0 || put_item_long(&out, 13, head, 7) < 0 ||
        put_item_string(&out, 14, head, 8) < 0 ||
        put_nested(&out, 15, args[1], &scratch, NULL) < 0 ||
        put_item_long(&out, 16, head, 9) < 0 || put_item_long(&out, 17, head, 10) < 0 ||
        encode_steps(&out, 18, args[3], 0) < 0 || encode_steps(&out, 19, args[4], 1) < 0 ||
        put_nested(&out, 20, args[2], &scratch, args[8]) < 0 ||
        put_bytes(&out, PyBytes_AS_STRING(args[9]), PyBytes_GET_SIZE(args[9])) < 0 ||
        put_optional_double(&out, 25, PyTuple_GET_ITEM(head, 11)) < 0 ||
        put_optional_double(&out, 26, PyTuple_GET_ITEM(head, 12)) < 0;
    PyObject *result = failed ? NULL : PyBytes_FromStringAndSize(out.data, out.length);
    PyMem_Free(out.data);
    PyMem_Free(scratch.data);
    return result;
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    const unsigned char *data;
    Py_ssize_t position;
    Py_ssize_t end;
} Reader;

static int fail(const char *message) {
    PyErr_SetString(DecodeError, message);
    return -1;
}

static int read_varint(Reader *reader, uint64_t *out) {
    uint64_t result = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
        if (reader->position >= reader->end) {
            break;
        }
        unsigned char byte = reader->data[reader->position++];
        result |= (uint64_t)(byte & 0x7F) << shift;
        if (byte < 0x80) {
            *out = result;
            return 0;
        }
    }
    return fail("truncated or overlong varint");
}

static int read_double(Reader *reader, double *out) {
    if (reader->position + 8 > reader->end) {
        return fail("truncated double");
    }
    memcpy(out, reader->data + reader->position, 8);
    reader->position += 8;
    return 0;
}

/* The payload of a length-delimited field: [*start, *stop). Like upb, a length takes at
   most 5 bytes: a longer (padded) one is refused, not read. */
static __attribute__((noinline)) int read_long_length(Reader *reader, Py_ssize_t *start,
                                                      Py_ssize_t *stop) {
    uint64_t length;
    Py_ssize_t first = reader->position;
    if (read_varint(reader, &length) < 0) {
        return -1;
    }
    if (reader->position - first > 5) {
        return fail("length longer than 5 bytes");
    }
    if (length > (uint64_t)(reader->end - reader->position)) {
        return fail("length runs past the end of the message");
    }
    *start = reader->position;
    *stop = reader->position + (Py_ssize_t)length;
    reader->position = *stop;
    return 0;
}

/* read_long_length, with the common case (a length under 128, in the message) inlined. */
static inline int read_length(Reader *reader, Py_ssize_t *start, Py_ssize_t *stop) {
    Py_ssize_t at = reader->position;
    if (at < reader->end) {
        unsigned char length = reader->data[at];
        if (length < 0x80 && length < reader->end - at) {
            *start = at + 1;
            *stop = at + 1 + length;
            reader->position = *stop;
            return 0;
        }
    }
    return read_long_length(reader, start, stop);
}

static PyObject *read_string(Reader *reader) {
    Py_ssize_t start, stop;
    if (read_length(reader, &start, &stop) < 0) {
        return NULL;
    }
    PyObject *text =
        PyUnicode_DecodeUTF8((const char *)reader->data + start, stop - start, "strict");
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        PyErr_SetString(DecodeError, "string field is not valid UTF-8");
    }
    return text;
}

static int skip_field(Reader *reader, uint32_t wire_type) {
    uint64_t ignored;
    Py_ssize_t start, stop;
    switch (wire_type) {
    case 0:
        return read_varint(reader, &ignored);
    case 1:
        if (reader->position + 8 > reader->end) {
            return fail("truncated field");
        }
        reader->position += 8;
        return 0;
    case 2:
        return read_length(reader, &start, &stop);
    case 5:
        if (reader->position + 4 > reader->end) {
            return fail("truncated field");
        }
        reader->position += 4;
        return 0;
    default: {
        PyErr_Format(DecodeError, "unsupported wire type %u", wire_type);
        return -1;
    }
    }
}

static int wrong_wire_type(const char *message_name, uint32_t field, uint32_t wire_type) {
    PyErr_Format(DecodeError, "%s field %u has wire type %u", message_name, field, wire_type);
    return -1;
}

/* A field key, refused where upb refuses it: longer than 5 bytes or 32 bits (so field
   numbers stay within 2^29 - 1), or field number 0. */
static __attribute__((noinline)) int read_long_key(Reader *reader, uint32_t *field,
                                                   uint32_t *wire_type) {
    uint64_t key;
    Py_ssize_t first = reader->position;
    if (read_varint(reader, &key) < 0) {
        return -1;
    }
    if (reader->position - first > 5 || key > UINT32_MAX) {
        return fail("field key longer than 32 bits");
    }
    if (key < 8) {
        return fail("field number 0");
    }
    *field = (uint32_t)(key >> 3);
    *wire_type = (uint32_t)(key & 7);
    return 0;
}

/* read_long_key, with the common case (a one-byte key of fields 1 to 15) inlined. */
static inline int read_key(Reader *reader, uint32_t *field, uint32_t *wire_type) {
    if (reader->position < reader->end) {
        unsigned char key = reader->data[reader->position];
        if (key >= 8 && key < 0x80) {
            reader->position++;
            *field = key >> 3;
            *wire_type = key & 7;
            return 0;
        }
    }
    return read_long_key(reader, field, wire_type);
}

/* An int32 field (an enum, nanos) as upb reads it: the low 32 bits of the varint. */
static long long as_int32(uint64_t value) {
    return (long long)(int32_t)(uint32_t)value;
}

/* A google.protobuf.Timestamp or Duration as the contract holds it. */
typedef struct {
    long long seconds;
    long long nanos;
} Time;

/* A Time in nanoseconds, exact: seconds beyond about 292 years overflow 64 bits, and the
   rules must see such a value as it is (far off), never wrapped round. */
static inline PyObject *time_nanoseconds(Time time) {
    long long scaled, total;
    if (!__builtin_mul_overflow(time.seconds, 1000000000LL, &scaled) &&
        !__builtin_add_overflow(scaled, time.nanos, &total)) {
        return PyLong_FromLongLong(total);
    }
    PyObject *seconds = PyLong_FromLongLong(time.seconds);
    PyObject *billion = PyLong_FromLongLong(1000000000LL);
    PyObject *nanos = PyLong_FromLongLong(time.nanos);
    PyObject *product = seconds && billion ? PyNumber_Multiply(seconds, billion) : NULL;
    PyObject *result = product && nanos ? PyNumber_Add(product, nanos) : NULL;
    Py_XDECREF(seconds);
    Py_XDECREF(billion);
    Py_XDECREF(nanos);
    Py_XDECREF(product);
    return result;
}

/* Read into `out`, over what an earlier occurrence of the field set: a message field
   that appears twice is merged, as the runtime does. */
static int read_time(Reader *outer, Time *out) {
    Py_ssize_t start, stop;
    if (read_length(outer, &start, &stop) < 0) {
        return -1;
    }
    Reader reader = {outer->data, start, stop};
    long long seconds = out->seconds, nanos = out->nanos;
    while (reader.position < reader.end) {
        uint32_t field, wire_type;
        uint64_t value;
        if (read_key(&reader, &field, &wire_type) < 0) {
            return -1;
        }
        if (wire_type != 0) {
            if (skip_field(&reader, wire_type) < 0) {
                return -1;
            }
            continue;
        }
        if (read_varint(&reader, &value) < 0) {
            return -1;
        }
        /* google.protobuf.Timestamp and Duration alike: seconds 1, nanos 2. */
        if (field == 1) {
            seconds = (long long)value;
        } else if (field == 2) {
            nanos = as_int32(value);
        }
    }
    out->seconds = seconds;
    out->nanos = nanos;
    return 0;
}

/* A tuple of `count` new references, which it takes over. If one of them is NULL (an error
 * is set), the others are released and NULL is returned. Py_BuildValue would parse a format
 * string for every vote and prediction: about half the cost of decoding. */
static PyObject *tuple_of(Py_ssize_t count, PyObject **items) {
    PyObject *tuple = NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (items[i] == NULL) {
            goto failed;
        }
    }
    tuple = PyTuple_New(count);
    if (tuple == NULL) {
        goto failed;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyTuple_SET_ITEM(tuple, i, items[i]);
    }
    return tuple;
failed:
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(items[i]);
    }
    return NULL;
}

/* Field numbers of the messages read here (proto/tradeflow/ml/v1/prediction.proto and
 * proto/tradeflow/common/v1/user_context.proto). */
enum { VOTE_MODEL_ID = 1, VOTE_DIRECTION = 2, VOTE_CONFIDENCE = 3, VOTE_WEIGHT = 4 };
enum { PATTERN_NAME = 1, PATTERN_PROBABILITY = 2, PATTERN_DIRECTION = 3 };
enum {
    PREDICTION_ID = 1,
    PREDICTION_SYMBOL = 2,
    PREDICTION_PRIMARY_DIRECTION = 3,
    PREDICTION_CONFIDENCE = 4,
    PREDICTION_VOTES = 5,
    PREDICTION_PATTERNS = 6,
    PREDICTION_VOLUME_CONFIRMATION = 7,
    PREDICTION_CURRENT_PRICE = 8,
    PREDICTION_PREDICTED_PRICE = 9,
    PREDICTION_BID = 10,
    PREDICTION_ASK = 11,
    PREDICTION_SPREAD_PIPS = 12,
    PREDICTION_HORIZON = 13,
    PREDICTION_TIMESTAMP = 14,
    PREDICTION_LAST_FIELD = PREDICTION_TIMESTAMP,
};
enum {
    USER_ID = 1,
    USER_COMPANY_ID = 2,
    USER_TIER = 3,
    USER_ACCOUNT_EQUITY = 4,
    USER_ACCOUNT_CURRENCY = 5,
    USER_LAST_FIELD = USER_ACCOUNT_CURRENCY,
};
enum {
    BATCH_ID = 1,
    BATCH_USER_CONTEXT = 2,
    BATCH_PRODUCED_AT = 3,
    BATCH_PREDICTIONS = 4,
    BATCH_CORRELATION_ID = 5,
    BATCH_LAST_FIELD = BATCH_CORRELATION_ID,
};

/* Positions in the tuples decode_batch returns; wire/predictions.py unpacks them by name in
 * the same order. */
enum {
    AT_PREDICTION_ID, AT_SYMBOL, AT_DIRECTION, AT_CONFIDENCE, AT_PRICE, AT_PREDICTED_PRICE,
    AT_BID, AT_ASK, AT_SPREAD_PIPS, AT_VOLUME, AT_HORIZON_NS, AT_OBSERVED_NS, AT_VOTES,
    AT_PATTERNS, PREDICTION_TUPLE_SIZE,
};
enum {
    AT_BATCH_ID, AT_HAS_TENANT, AT_USER_ID, AT_COMPANY_ID, AT_TIER, AT_EQUITY, AT_CURRENCY,
    AT_PRODUCED_NS, AT_CORRELATION_ID, AT_PREDICTIONS, BATCH_TUPLE_SIZE,
};

/* (direction, confidence, weight) for a ModelVote; (direction, probability) for a pattern. */
static PyObject *read_vote_or_pattern(Reader *outer, int is_vote) {
    Py_ssize_t start, stop;
    if (read_length(outer, &start, &stop) < 0) {
        return NULL;
    }
    Reader reader = {outer->data, start, stop};
    long long direction = 0;
    double first = 0.0, second = 0.0;
    const char *name = is_vote ? "ModelVote" : "PatternDetection";
    uint32_t direction_field = is_vote ? VOTE_DIRECTION : PATTERN_DIRECTION;
    /* A vote's confidence then weight; a pattern's probability. */
    uint32_t first_field = is_vote ? VOTE_CONFIDENCE : PATTERN_PROBABILITY;
    uint32_t last_field = is_vote ? VOTE_WEIGHT : PATTERN_DIRECTION;
    while (reader.position < reader.end) {
        uint32_t field, wire_type;
        if (read_key(&reader, &field, &wire_type) < 0) {
            return NULL;
        }
        int known = field >= 1 && field <= last_field;
        /* The name (field 1 of both) is LEN, the direction VARINT, the rest doubles. */
        uint32_t expected = field == VOTE_MODEL_ID ? 2 : field == direction_field ? 0 : 1;
        if (!known) {
            if (skip_field(&reader, wire_type) < 0) {
                return NULL;
            }
            continue;
        }
        if (wire_type != expected) {
            wrong_wire_type(name, field, wire_type);
            return NULL;
        }
        if (field == VOTE_MODEL_ID) {
            /* The model id or pattern name: not used by the rules, but must be valid UTF-8. */
            PyObject *ignored = read_string(&reader);
            if (ignored == NULL) {
                return NULL;
            }
            Py_DECREF(ignored);
        } else if (field == direction_field) {
            uint64_t value;
            if (read_varint(&reader, &value) < 0) {
                return NULL;
            }
            direction = as_int32(value);
        } else if (read_double(&reader, field == first_field ? &first : &second) < 0) {
            return NULL;
        }
    }
    PyObject *items[3] = {PyLong_FromLongLong(direction), PyFloat_FromDouble(first),
                          is_vote ? PyFloat_FromDouble(second) : NULL};
    return tuple_of(is_vote ? 3 : 2, items);
}

/* Wire type of each Prediction field (9: no such field). */
static const uint32_t prediction_wire_types[PREDICTION_LAST_FIELD + 1] = {
    [0] = 9,
    [PREDICTION_ID] = 2,
    [PREDICTION_SYMBOL] = 2,
    [PREDICTION_PRIMARY_DIRECTION] = 0,
    [PREDICTION_CONFIDENCE] = 1,
    [PREDICTION_VOTES] = 2,
    [PREDICTION_PATTERNS] = 2,
    [PREDICTION_VOLUME_CONFIRMATION] = 1,
    [PREDICTION_CURRENT_PRICE] = 1,
    [PREDICTION_PREDICTED_PRICE] = 1,
    [PREDICTION_BID] = 1,
    [PREDICTION_ASK] = 1,
    [PREDICTION_SPREAD_PIPS] = 1,
    [PREDICTION_HORIZON] = 2,
    [PREDICTION_TIMESTAMP] = 2,
};

static PyObject *read_prediction(Reader *outer) {
    Py_ssize_t start, stop;
    if (read_length(outer, &start, &stop) < 0) {
        return NULL;
    }
    Reader reader = {outer->data, start, stop};
    PyObject *prediction_id = NULL, *symbol = NULL, *votes = PyList_New(0),
             *patterns = PyList_New(0), *result = NULL;
    long long direction = 0;
    Time horizon = {0, 0}, observed = {0, 0};
    int has_observed = 0;
    double confidence = 0.0, price = 0.0, predicted = 0.0, bid = 0.0, ask = 0.0, spread = 0.0,
           volume = 0.0;
    int has_spread = 0, has_volume = 0;
    if (votes == NULL || patterns == NULL) {
        goto done;
    }
    while (reader.position < reader.end) {
        uint32_t field, wire_type;
        if (read_key(&reader, &field, &wire_type) < 0) {
            goto done;
        }
        if (field < 1 || field > PREDICTION_LAST_FIELD) {
            if (skip_field(&reader, wire_type) < 0) {
                goto done;
            }
            continue;
        }
        if (wire_type != prediction_wire_types[field]) {
            wrong_wire_type("Prediction", field, wire_type);
            goto done;
        }
        PyObject *item;
        uint64_t value;
        switch (field) {
        case PREDICTION_ID:
        case PREDICTION_SYMBOL: {
            PyObject *text = read_string(&reader);
            if (text == NULL) {
                goto done;
            }
            PyObject **slot = field == PREDICTION_ID ? &prediction_id : &symbol;
            Py_XSETREF(*slot, text);
            break;
        }
        case PREDICTION_PRIMARY_DIRECTION:
            if (read_varint(&reader, &value) < 0) {
                goto done;
            }
            direction = as_int32(value);
            break;
        case PREDICTION_CONFIDENCE:
            if (read_double(&reader, &confidence) < 0) goto done;
            break;
        case PREDICTION_VOLUME_CONFIRMATION:
            if (read_double(&reader, &volume) < 0) goto done;
            has_volume = 1;
            break;
        case PREDICTION_CURRENT_PRICE:
            if (read_double(&reader, &price) < 0) goto done;
            break;
        case PREDICTION_PREDICTED_PRICE:
            if (read_double(&reader, &predicted) < 0) goto done;
            break;
        case PREDICTION_BID:
            if (read_double(&reader, &bid) < 0) goto done;
            break;
        case PREDICTION_ASK:
            if (read_double(&reader, &ask) < 0) goto done;
            break;
        case PREDICTION_SPREAD_PIPS:
            if (read_double(&reader, &spread) < 0) goto done;
            has_spread = 1;
            break;
        case PREDICTION_VOTES:
        case PREDICTION_PATTERNS:
            item = read_vote_or_pattern(&reader, field == PREDICTION_VOTES);
            if (item == NULL ||
                PyList_Append(field == PREDICTION_VOTES ? votes : patterns, item) < 0) {
                Py_XDECREF(item);
                goto done;
            }
            Py_DECREF(item);
            break;
        case PREDICTION_HORIZON:
            if (read_time(&reader, &horizon) < 0) goto done;
            break;
        case PREDICTION_TIMESTAMP:
            if (read_time(&reader, &observed) < 0) goto done;
            has_observed = 1;
            break;
        }
    }
    PyObject *items[PREDICTION_TUPLE_SIZE] = {
        [AT_PREDICTION_ID] = Py_NewRef(prediction_id ? prediction_id : empty_string),
        [AT_SYMBOL] = Py_NewRef(symbol ? symbol : empty_string),
        [AT_DIRECTION] = PyLong_FromLongLong(direction),
        [AT_CONFIDENCE] = PyFloat_FromDouble(confidence),
        [AT_PRICE] = PyFloat_FromDouble(price),
        [AT_PREDICTED_PRICE] = PyFloat_FromDouble(predicted),
        [AT_BID] = PyFloat_FromDouble(bid),
        [AT_ASK] = PyFloat_FromDouble(ask),
        [AT_SPREAD_PIPS] = has_spread ? PyFloat_FromDouble(spread) : Py_NewRef(Py_None),
        [AT_VOLUME] = has_volume ? PyFloat_FromDouble(volume) : Py_NewRef(Py_None),
        [AT_HORIZON_NS] = time_nanoseconds(horizon),
        [AT_OBSERVED_NS] = has_observed ? time_nanoseconds(observed) : Py_NewRef(Py_None),
        [AT_VOTES] = Py_NewRef(votes),
        [AT_PATTERNS] = Py_NewRef(patterns),
    };
    result = tuple_of(PREDICTION_TUPLE_SIZE, items);
done:
    Py_XDECREF(prediction_id);
    Py_XDECREF(symbol);
    Py_XDECREF(votes);
    Py_XDECREF(patterns);
    return result;
}

static int read_user_context(Reader *outer, PyObject **user_id, PyObject **company_id,
                             long long *tier, double *equity, PyObject **currency) {
    Py_ssize_t start, stop;
    if (read_length(outer, &start, &stop) < 0) {
        return -1;
    }
    Reader reader = {outer->data, start, stop};
    static const uint32_t wire_types[USER_LAST_FIELD + 1] = {
        [0] = 9,
        [USER_ID] = 2,
        [USER_COMPANY_ID] = 2,
        [USER_TIER] = 0,
        [USER_ACCOUNT_EQUITY] = 1,
        [USER_ACCOUNT_CURRENCY] = 2,
    };
    while (reader.position < reader.end) {
        uint32_t field, wire_type;
        if (read_key(&reader, &field, &wire_type) < 0) {
            return -1;
        }
        if (field < 1 || field > USER_LAST_FIELD) {
            if (skip_field(&reader, wire_type) < 0) {
                return -1;
            }
            continue;
        }
        if (wire_type != wire_types[field]) {
            return wrong_wire_type("UserContext", field, wire_type);
        }
        if (field == USER_TIER) {
            uint64_t value;
            if (read_varint(&reader, &value) < 0) {
                return -1;
            }
            *tier = as_int32(value);
        } else if (field == USER_ACCOUNT_EQUITY) {
            if (read_double(&reader, equity) < 0) {
                return -1;
            }
        } else {
            PyObject *text = read_string(&reader);
            if (text == NULL) {
                return -1;
            }
            PyObject **slot = field == USER_ID           ? user_id
                              : field == USER_COMPANY_ID ? company_id
                                                         : currency;
            Py_SETREF(*slot, text);
        }
    }
    return 0;
}

static PyObject *decode_batch(PyObject *module, PyObject *data) {
    (void)module;
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "decode_batch expects bytes");
        return NULL;
    }
    Reader reader = {(const unsigned char *)PyBytes_AS_STRING(data), 0, PyBytes_GET_SIZE(data)};
    PyObject *batch_id = Py_NewRef(empty_string), *user_id = Py_NewRef(empty_string),
             *company_id = Py_NewRef(empty_string), *currency = Py_NewRef(empty_string),
             *correlation_id = Py_NewRef(empty_string), *predictions = PyList_New(0),
             *result = NULL;
    long long tier = 0;
    Time produced = {0, 0};
    double equity = 0.0;
    int has_tenant = 0;
    if (predictions == NULL) {
        goto done;
    }
    while (reader.position < reader.end) {
        uint32_t field, wire_type;
        if (read_key(&reader, &field, &wire_type) < 0) {
            goto done;
        }
        if (field < 1 || field > BATCH_LAST_FIELD) {
            if (skip_field(&reader, wire_type) < 0) {
                goto done;
            }
            continue;
        }
        /* Every field of a batch is LEN: strings and messages. */
        if (wire_type != 2) {
            wrong_wire_type("MLPredictionBatch", field, wire_type);
            goto done;
        }
        if (field == BATCH_ID || field == BATCH_CORRELATION_ID) {
            PyObject *text = read_string(&reader);
            if (text == NULL) {
                goto done;
            }
            Py_SETREF(*(field == BATCH_ID ? &batch_id : &correlation_id), text);
        } else if (field == BATCH_USER_CONTEXT) {
            has_tenant = 1;
            if (read_user_context(&reader, &user_id, &company_id, &tier, &equity, &currency) <
                0) {
                goto done;
            }
        } else if (field == BATCH_PRODUCED_AT) {
            if (read_time(&reader, &produced) < 0) {
                goto done;
            }
        } else {
            PyObject *prediction = read_prediction(&reader);
            if (prediction == NULL || PyList_Append(predictions, prediction) < 0) {
                Py_XDECREF(prediction);
                goto done;
            }
            Py_DECREF(prediction);
        }
    }
    PyObject *items[BATCH_TUPLE_SIZE] = {
        [AT_BATCH_ID] = Py_NewRef(batch_id),
        [AT_HAS_TENANT] = PyBool_FromLong(has_tenant),
        [AT_USER_ID] = Py_NewRef(user_id),
        [AT_COMPANY_ID] = Py_NewRef(company_id),
        [AT_TIER] = PyLong_FromLongLong(tier),
        [AT_EQUITY] = PyFloat_FromDouble(equity),
        [AT_CURRENCY] = Py_NewRef(currency),
        [AT_PRODUCED_NS] = time_nanoseconds(produced),
        [AT_CORRELATION_ID] = Py_NewRef(correlation_id),
        [AT_PREDICTIONS] = Py_NewRef(predictions),
    };
    result = tuple_of(BATCH_TUPLE_SIZE, items);
done:
    Py_DECREF(batch_id);
    Py_DECREF(user_id);
    Py_DECREF(company_id);
    Py_DECREF(currency);
    Py_DECREF(correlation_id);
    Py_XDECREF(predictions);
    return result;
}

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"decode_batch", (PyCFunction)decode_batch, METH_O,
     "decode_batch(data: bytes) -> tuple: an MLPredictionBatch as plain values."},
    {"encode_signal", (PyCFunction)(void (*)(void))encode_signal, METH_FASTCALL,
     "encode_signal(head, entry, market, adjustments, trace, batch_id_field, symbol_field, "
     "tenant_fields, market_symbol_field, tail_fields) -> bytes: one TradingSignal."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "_fastwire",
    "Protocol-buffer codec for the hot-path messages (decision 7).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastwire(void) {
    PyObject *module = PyModule_Create(&module_definition);
    if (module == NULL) {
        return NULL;
    }
    DecodeError = PyErr_NewException("trading_engine.wire._fastwire.DecodeError",
                                     PyExc_ValueError, NULL);
    empty_string = PyUnicode_FromString("");
    if (DecodeError == NULL || empty_string == NULL ||
        PyModule_AddObjectRef(module, "DecodeError", DecodeError) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    /* Prediction field number -> wire type, for the tests to compare with the descriptor. */
    PyObject *wire_types = PyDict_New();
    if (wire_types == NULL) {
        Py_DECREF(module);
        return NULL;
    }
    for (long field = 1; field <= PREDICTION_LAST_FIELD; field++) {
        PyObject *key = PyLong_FromLong(field);
        PyObject *value = PyLong_FromLong((long)prediction_wire_types[field]);
        int status = (key && value) ? PyDict_SetItem(wire_types, key, value) : -1;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (status < 0) {
            Py_DECREF(wire_types);
            Py_DECREF(module);
            return NULL;
        }
    }
    int added = PyModule_AddObjectRef(module, "PREDICTION_WIRE_TYPES", wire_types);
    Py_DECREF(wire_types);
    if (added < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
