-- One wrk script for every benchmark; BENCH_MODE picks the request.
--   validate  POST /licenses/validate with a random seeded key (BENCH_KEYS: a file, one per line)
--   signed    the same with a Licensed-Nonce, new for every request: a signed answer
--   file      POST /licenses/license_file of a random seeded key: a license file
--   activate  POST /licenses/activate of one key (BENCH_KEY), all requests contending for it
--   heartbeat POST /licenses/heartbeat of one key (BENCH_KEY) for its instances (BENCH_INSTANCES:
--             a file, one id per line), beaten in turn from a random starting point per thread
--   ingest    POST /license_updates, RELATIVE +1 on one of many fresh pairs
--   onboard   POST /license_updates, RELATIVE +1 on a pair never written before, every request
--   quantity  GET /license_quantity of a random seeded pair (BENCH_PAIRS of them)
--   get       GET BENCH_PATH as is
-- Prints "RESULT <requests per second> <p99 ms> <errors, counting statuses >= 400>" when done.

local mode = os.getenv("BENCH_MODE")
local auth = os.getenv("BENCH_AUTH")
local keys = {}
local counter = 0
local threads = {}

function setup(thread)
    thread:set("id", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    math.randomseed(os.time() * 1000 + (id or 0))
    -- Tells this run's new accounts from those of the runs before it.
    run = math.random(1e9)
    if mode == "validate" or mode == "signed" or mode == "file" then
        for line in io.lines(os.getenv("BENCH_KEYS")) do
            table.insert(keys, line)
        end
    elseif mode == "heartbeat" then
        for line in io.lines(os.getenv("BENCH_INSTANCES")) do
            table.insert(keys, line)
        end
        counter = math.random(#keys)
    end
    wrk.headers["Content-Type"] = "application/json"
    if auth then
        wrk.headers["Authorization"] = "Bearer " .. auth
    end
end

function request()
    counter = counter + 1
    if mode == "validate" then
        local body = '{"license_key":"' .. keys[math.random(#keys)] .. '"}'
        return wrk.format("POST", "/licenses/validate", nil, body)
    elseif mode == "signed" then
        local body = '{"license_key":"' .. keys[math.random(#keys)] .. '"}'
        local headers = {["Content-Type"] = "application/json",
                         ["Licensed-Nonce"] = string.format("%d-%d-%d", id or 0, counter, math.random(1e9))}
        return wrk.format("POST", "/licenses/validate", headers, body)
    elseif mode == "file" then
        local body = '{"license_key":"' .. keys[math.random(#keys)] .. '"}'
        return wrk.format("POST", "/licenses/license_file", nil, body)
    elseif mode == "activate" then
        local body = '{"license_key":"' .. os.getenv("BENCH_KEY") .. '","name":"bench"}'
        return wrk.format("POST", "/licenses/activate", nil, body)
    elseif mode == "heartbeat" then
        local body = '{"license_key":"' .. os.getenv("BENCH_KEY") .. '","license_key_instance_id":"' ..
            keys[counter % #keys + 1] .. '"}'
        return wrk.format("POST", "/licenses/heartbeat", nil, body)
    elseif mode == "ingest" then
        local body = '{"accountId":"ingest-' .. id .. '-' .. (counter % 1000) ..
            '","licenseId":"seats","updateType":"RELATIVE","quantity":1}'
        return wrk.format("POST", "/license_updates", nil, body)
    elseif mode == "onboard" then
        local body = '{"accountId":"onboard-' .. run .. '-' .. id .. '-' .. counter ..
            '","licenseId":"seats","updateType":"RELATIVE","quantity":1}'
        return wrk.format("POST", "/license_updates", nil, body)
    elseif mode == "quantity" then
        local pair = math.random(0, tonumber(os.getenv("BENCH_PAIRS")) - 1)
        local day = math.random(0, 99)
        local path = "/license_quantity?accountId=acct-" .. pair ..
            "&licenseId=seats&at=2024-01-" .. string.format("%02d", 1 + day % 28) .. "T12:00:00Z"
        return wrk.format("GET", path)
    else
        return wrk.format("GET", os.getenv("BENCH_PATH"))
    end
end

function done(summary, latency, requests)
    local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT %.1f %.3f %d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000, errors))
end
