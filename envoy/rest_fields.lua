-- Refuses a REST request body that names a field its request message does not have.
--
-- Envoy's gRPC-JSON transcoder drops unknown JSON fields without a word, so a
-- misspelt field became a default value and the call went through (decision 24).
-- This filter runs before the transcoder on the routes that take a body. It reads
-- the body as strict JSON (RFC 8259) and checks every object key, at any depth,
-- against the fields of the message that object becomes; a body naming a field
-- that does not exist, or one that is not strict JSON, is answered here with a 400
-- in the engine's error shape (a google.rpc.Status with BadRequest field
-- violations), and the engine never sees it.
--
-- `trading-engine gateway` renders this file after three tables built from the
-- descriptor set the transcoder reads (gateway/rest_fields.py):
--   ROUTES:   list of {method, path pattern, request message} for routes with a body
--   MESSAGES: message name -> {field name (JSON or proto) -> kind}, where a kind is
--             false (a value whose keys are not fields: scalars, enums, Struct, Any...),
--             a message name, or {map = kind} for a map of such values
--   ERROR_DOMAIN: the domain of the ErrorInfo the engine's own errors carry

local find, sub, byte, char, format = string.find, string.sub, string.byte, string.char, string.format
local concat, insert = table.concat, table.insert

-- Unknown fields reported in one answer, at most; the scan still reads the whole body.
local MAX_REPORTED = 20
-- Deepest nesting read; no request message nests this deep.
local MAX_DEPTH = 64

local function malformed(state, expected)
  error({malformed = format("%s at byte %d", expected, state.i)}, 0)
end

local function skip_space(state)
  local _, last = find(state.s, "^[ \t\r\n]*", state.i)
  state.i = last + 1
end

local ESCAPES = {
  [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f", [110] = "\n",
  [114] = "\r", [116] = "\t",
}

local function utf8(code)
  if code < 0x80 then return char(code) end
  if code < 0x800 then
    return char(0xC0 + math.floor(code / 0x40), 0x80 + code % 0x40)
  end
  return char(0xE0 + math.floor(code / 0x1000), 0x80 + math.floor(code / 0x40) % 0x40,
              0x80 + code % 0x40)
end

-- The string starting at state.i (a double quote), decoded, and state.i past its end.
local function read_string(state)
  local s, i = state.s, state.i + 1
  local stop = find(s, '[%z\1-\31"\\]', i)
  if stop ~= nil and byte(s, stop) == 34 then
    -- No escape: the common case, without building the string in parts.
    state.i = stop + 1
    return sub(s, i, stop - 1)
  end
  local parts = {}
  while true do
    if stop == nil then malformed(state, "unterminated string") end
    insert(parts, sub(s, i, stop - 1))
    local c = byte(s, stop)
    if c == 34 then
      state.i = stop + 1
      return concat(parts)
    end
    if c ~= 92 then
      state.i = stop
      malformed(state, "control character in a string")
    end
    local escaped = byte(s, stop + 1)
    if escaped == 117 then
      local hex = sub(s, stop + 2, stop + 5)
      if not find(hex, "^%x%x%x%x$") then
        state.i = stop
        malformed(state, "bad \\u escape")
      end
      insert(parts, utf8(tonumber(hex, 16)))
      i = stop + 6
    elseif ESCAPES[escaped] then
      insert(parts, ESCAPES[escaped])
      i = stop + 2
    else
      state.i = stop
      malformed(state, "bad escape")
    end
    stop = find(s, '[%z\1-\31"\\]', i)
  end
end

local LITERALS = {[116] = "true", [102] = "false", [110] = "null"}

local function skip_scalar(state)
  local s, i = state.s, state.i
  local literal = LITERALS[byte(s, i)]
  if literal ~= nil then
    if sub(s, i, i + #literal - 1) ~= literal then malformed(state, "expected a value") end
    state.i = i + #literal
    return
  end
  local _, last = find(s, "^-?%d+", i)
  if last == nil then malformed(state, "expected a value") end
  local _, fraction = find(s, "^%.%d+", last + 1)
  last = fraction or last
  local _, exponent = find(s, "^[eE][-+]?%d+", last + 1)
  state.i = (exponent or last) + 1
end

-- Edit distance counting a swap of two neighbours as one edit ("nmae" is one from "name").
local function distance(a, b)
  local before, previous = nil, {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current = {[0] = i}
    for j = 1, #b do
      local cost = byte(a, i) == byte(b, j) and 0 or 1
      current[j] = math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
      if before and i > 1 and j > 1 and byte(a, i) == byte(b, j - 1)
          and byte(a, i - 1) == byte(b, j) then
        current[j] = math.min(current[j], before[j - 2] + 1)
      end
    end
    before, previous = previous, current
  end
  return previous[#b]
end

-- The field a misspelt key most likely meant: the most similar name (1 - edit distance /
-- length, at least 0.6, as Python's difflib would suggest), a JSON name for a camelCase key.
local function closest(key, fields)
  if #key > 64 then return nil end
  local best, best_similarity = nil, 0.6
  for name in pairs(fields) do
    if not find(name, "_") or not find(key, "%u") then
      local similarity = 1 - distance(key, name) / math.max(#key, #name)
      if similarity > best_similarity or (similarity == best_similarity and best and name < best) then
        best, best_similarity = name, similarity
      end
    end
  end
  return best
end

-- `text` as a JSON string of printable ASCII (other bytes as \u00XX escapes).
local function json_string(text)
  return '"' .. text:gsub('[%c"\\\127-\255]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return format("\\u%04x", byte(c))
  end) .. '"'
end

local parse_value

-- The path of the value being read, as a caller writes it: strategy.features, votes[2].
-- Built only for an unknown field; while reading, state.path holds its segments.
local function path_of(segments)
  local parts = {}
  for index, segment in ipairs(segments) do
    if type(segment) == "number" then
      insert(parts, "[" .. segment .. "]")
    elseif segment.map_key then
      insert(parts, "[" .. json_string(segment.map_key) .. "]")
    else
      insert(parts, index == 1 and segment or "." .. segment)
    end
  end
  return concat(parts)
end

local function parse_object(state, kind)
  local fields = type(kind) == "string" and MESSAGES[kind] or nil
  local values = type(kind) == "table" and kind.map or nil
  local path = state.path
  local depth = #path + 1
  state.i = state.i + 1
  skip_space(state)
  if byte(state.s, state.i) == 125 then
    state.i = state.i + 1
    return
  end
  while true do
    if byte(state.s, state.i) ~= 34 then malformed(state, "expected a quoted field name") end
    local key = read_string(state)
    skip_space(state)
    if byte(state.s, state.i) ~= 58 then malformed(state, "expected ':'") end
    state.i = state.i + 1
    skip_space(state)
    local child = false
    if fields ~= nil then
      path[depth] = key
      child = fields[key]
      if child == nil then
        child = false
        if #state.unknown < MAX_REPORTED then
          insert(state.unknown, {field = path_of(path), message = kind, hint = closest(key, fields)})
        end
      end
    elseif values ~= nil then
      path[depth] = {map_key = key}
      child = values
    else
      path[depth] = key
    end
    parse_value(state, child)
    path[depth] = nil
    skip_space(state)
    local c = byte(state.s, state.i)
    if c == 125 then
      state.i = state.i + 1
      return
    end
    if c ~= 44 then malformed(state, "expected ',' or '}'") end
    state.i = state.i + 1
    skip_space(state)
  end
end

local function parse_array(state, kind)
  local path = state.path
  local depth = #path + 1
  state.i = state.i + 1
  skip_space(state)
  if byte(state.s, state.i) == 93 then
    state.i = state.i + 1
    return
  end
  local index = 0
  while true do
    path[depth] = index
    parse_value(state, kind)
    path[depth] = nil
    index = index + 1
    skip_space(state)
    local c = byte(state.s, state.i)
    if c == 93 then
      state.i = state.i + 1
      return
    end
    if c ~= 44 then malformed(state, "expected ',' or ']'") end
    state.i = state.i + 1
    skip_space(state)
  end
end

-- Reads the value at state.i, an object's keys checked against `kind`'s fields.
parse_value = function(state, kind)
  local c = byte(state.s, state.i)
  if c == 123 or c == 91 then
    state.depth = state.depth + 1
    if state.depth > MAX_DEPTH then malformed(state, "nested deeper than " .. MAX_DEPTH) end
    if c == 123 then
      parse_object(state, kind)
    else
      parse_array(state, kind)
    end
    state.depth = state.depth - 1
  elseif c == 34 then
    read_string(state)
  else
    skip_scalar(state)
  end
end

local function short_name(message)
  return (message:gsub("^.*%.", ""))
end

-- Answers with `body` as it is: envoy.yaml's local reply mapper leaves a reply marked so alone.
local function answer(handle, status, body)
  handle:streamInfo():dynamicMetadata():set("envoy.filters.http.lua", "answered", true)
  handle:respond({[":status"] = status, ["content-type"] = "application/json"}, body)
end

-- Answers 400 with a google.rpc.Status: ErrorInfo `reason`, and BadRequest `violations`.
local function refuse(handle, reason, message, violations)
  local details = {format('{"@type": "type.googleapis.com/google.rpc.ErrorInfo", ' ..
                          '"reason": %s, "domain": %s}', json_string(reason),
                          json_string(ERROR_DOMAIN))}
  if #violations > 0 then
    local listed = {}
    for _, violation in ipairs(violations) do
      insert(listed, format('{"field": %s, "description": %s}', json_string(violation.field),
                            json_string(violation.description)))
    end
    insert(details, format('{"@type": "type.googleapis.com/google.rpc.BadRequest", ' ..
                           '"fieldViolations": [%s]}', concat(listed, ", ")))
  end
  local body = format('{"code": 3, "message": %s, "details": [%s]}', json_string(message),
                      concat(details, ", "))
  answer(handle, "400", body)
end

local function request_message(headers)
  local method = headers:get(":method")
  local path = headers:get(":path") or ""
  path = sub(path, 1, (find(path, "?", 1, true) or #path + 1) - 1)
  for _, route in ipairs(ROUTES) do
    if route[1] == method and find(path, route[2]) then return route[3] end
  end
  return nil
end

function envoy_on_request(handle)
  local message = request_message(handle:headers())
  if message == nil then return end
  local body = handle:body()
  if body == nil or body:length() == 0 then return end
  local state = {s = body:getBytes(0, body:length()), i = 1, depth = 0, path = {}, unknown = {}}
  local ok, problem = pcall(function()
    skip_space(state)
    if byte(state.s, state.i) ~= 123 then malformed(state, "expected a JSON object") end
    parse_value(state, message)
    skip_space(state)
    if state.i <= #state.s then malformed(state, "unexpected text after the JSON object") end
  end)
  if not ok then
    if type(problem) ~= "table" then
      -- A fault of this script: refuse rather than let an unchecked body through.
      handle:logErr("rest field check failed: " .. tostring(problem))
      answer(handle, "500", '{"code": 13, "message": "the gateway could not check the ' ..
                            'request body", "details": []}')
      return
    end
    refuse(handle, "MALFORMED_JSON",
           "the request body is not JSON (RFC 8259): " .. problem.malformed, {})
    return
  end
  if #state.unknown == 0 then return end
  local violations, names = {}, {}
  for _, unknown in ipairs(state.unknown) do
    local description = "unknown field of " .. short_name(unknown.message)
    if unknown.hint then description = description .. format('; did you mean "%s"?', unknown.hint) end
    insert(violations, {field = unknown.field, description = description})
    insert(names, format('"%s"', unknown.field))
  end
  refuse(handle, "UNKNOWN_FIELD",
         format("the request body names fields unknown to %s, so nothing was done: %s",
                short_name(message), concat(names, ", ")), violations)
end
