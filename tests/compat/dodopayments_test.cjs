// Drives licensed with the official Dodo Payments JavaScript client (npm `dodopayments`),
// asserting what it returns and which error classes it throws.
//
// Run by tests/compat.rs with LICENSED_URL, LICENSED_API_KEY and LICENSED_READ_ONLY_KEY,
// and NODE_PATH naming the node_modules the client is installed in.

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const http = require("node:http");
const DodoPayments = require("dodopayments").default;

function connect(bearerToken) {
  return new DodoPayments({
    bearerToken,
    baseURL: process.env.LICENSED_URL,
    // No retries: a test must see the first answer.
    maxRetries: 0,
  });
}

const client = connect(process.env.LICENSED_API_KEY);
const readOnly = connect(process.env.LICENSED_READ_ONLY_KEY);

async function all(list) {
  const items = [];
  for await (const item of list) items.push(item);
  return items;
}

async function main() {
  const created = await client.products.create({
    name: "Editor Pro",
    price: { type: "one_time_price", currency: "EUR", price: 4900, discount: 0, purchasing_power_parity: false },
    tax_category: "digital_products",
    license_key_activations_limit: 2,
  });
  assert.match(created.product_id, /^pdt_/);
  assert.equal(created.price.type, "one_time_price");
  assert.equal(created.price.price, 4900);
  assert.equal(created.tax_category, "digital_products");
  assert.equal(created.is_recurring, false);
  assert.deepEqual(created.entitlements, []);

  await client.products.update(created.product_id, { tax_category: "saas", description: "Fast" });
  const fetched = await client.products.retrieve(created.product_id);
  assert.equal(fetched.tax_category, "saas");
  assert.equal(fetched.description, "Fast");
  assert.equal(fetched.price.price, 4900, "absent fields are unchanged");

  const plain = await client.products.create({ name: "Plain" });
  assert.deepEqual([plain.price.type, plain.price.price, plain.price.currency], ["one_time_price", 0, "USD"]);
  assert.equal(plain.tax_category, "saas");

  const products = await all(client.products.list({ page_size: 1 }));
  assert.deepEqual(products.map((p) => p.product_id), [created.product_id, plain.product_id]);
  assert.equal(products[0].price, 4900);
  assert.equal(products[0].currency, "EUR");
  assert.equal(products[0].price_detail.type, "one_time_price");

  await assert.rejects(
    client.products.create({ name: "X", price: { type: "one_time_price", currency: "USD", price: -1 }, tax_category: "saas" }),
    (error) => error instanceof DodoPayments.BadRequestError && error.error.message.includes("price.price"),
  );

  const customer = await client.customers.create({ email: "ada@example.com", name: "Ada Lovelace" });
  const keys = [];
  for (let n = 1; n <= 5; n++) {
    const key = await client.licenseKeys.create({
      customer_id: customer.customer_id,
      product_id: created.product_id,
      key: `JS-KEY-${n}`,
    });
    keys.push(key.key);
  }
  // This client counts pages from 1: its auto-pagination sees every key once.
  for (const pageSize of [1, 2, 5]) {
    const listed = await all(client.licenseKeys.list({ customer_id: customer.customer_id, page_size: pageSize }));
    assert.deepEqual(listed.map((k) => k.key), keys, `page_size ${pageSize}`);
  }
  const second = await client.licenseKeys.list({ page_size: 2, page_number: 2 });
  assert.deepEqual(second.items.map((k) => k.key), keys.slice(2, 4));

  const activation = await client.licenses.activate({ license_key: "JS-KEY-1", name: "laptop" });
  assert.match(activation.id, /^lki_/);
  assert.equal((await client.licenses.validate({ license_key: "JS-KEY-1", license_key_instance_id: activation.id })).valid, true);
  await assert.rejects(client.licenseKeys.retrieve("lic_missing"), DodoPayments.NotFoundError);
  await assert.rejects(
    client.licenseKeys.create({ customer_id: customer.customer_id, product_id: created.product_id, key: "JS-KEY-1" }),
    DodoPayments.ConflictError,
  );

  await webhooks();
  await deliveries(customer.customer_id, created.product_id);
  console.log("dodopayments (JavaScript): all checks passed");
}

async function webhooks() {
  const hook = await client.webhooks.create({
    url: "https://example.com/hook",
    description: "ops",
    filter_types: ["license_key.created", "license_update.created"],
    headers: { "X-Env": "prod", Authorization: "Bearer s3cret" },
    metadata: { team: "ops" },
    rate_limit: 10,
  });
  assert.match(hook.id, /^wh_/);
  assert.equal(hook.url, "https://example.com/hook");
  assert.deepEqual([hook.description, hook.disabled, hook.rate_limit], ["ops", false, 10]);
  assert.deepEqual(hook.filter_types, ["license_key.created", "license_update.created"]);
  assert.deepEqual(hook.metadata, { team: "ops" });
  assert.deepEqual(await client.webhooks.retrieve(hook.id), hook);
  const plain = await client.webhooks.create({ url: "http://127.0.0.1:9/x" });
  assert.deepEqual([plain.description, plain.filter_types, plain.rate_limit], ["", [], null]);

  const updated = await client.webhooks.update(hook.id, { disabled: true, filter_types: [], rate_limit: null });
  assert.deepEqual([updated.disabled, updated.filter_types, updated.rate_limit], [true, [], null]);
  assert.equal(updated.description, "ops");
  assert.equal(updated.created_at, hook.created_at);

  // The client follows `iterator` while there is one: every endpoint once, oldest first.
  assert.deepEqual((await all(client.webhooks.list({ limit: 1 }))).map((w) => w.id), [hook.id, plain.id]);
  const page = await client.webhooks.list({ limit: 1 });
  assert.equal(page.done, false);
  assert.ok(page.iterator);
  assert.equal(page.data.length, 1);
  assert.equal(page.hasNextPage(), true);

  const { secret } = await client.webhooks.retrieveSecret(hook.id);
  assert.match(secret, /^whsec_/);
  assert.equal(Buffer.from(secret.slice("whsec_".length), "base64").length, 32);
  await assert.rejects(readOnly.webhooks.retrieveSecret(hook.id), DodoPayments.PermissionDeniedError);
  await assert.rejects(readOnly.webhooks.delete(hook.id), DodoPayments.PermissionDeniedError);
  assert.equal((await readOnly.webhooks.retrieve(hook.id)).id, hook.id);

  const headers = await client.webhooks.headers.retrieve(hook.id);
  assert.deepEqual(headers.headers, { "x-env": "prod" });
  assert.deepEqual(headers.sensitive, ["authorization"]);
  assert.equal(await client.webhooks.headers.update(hook.id, { headers: { "X-Team": "ops" } }), null);
  assert.deepEqual((await client.webhooks.headers.retrieve(hook.id)).headers, { "x-env": "prod", "x-team": "ops" });

  await assert.rejects(
    client.webhooks.create({ url: "ftp://example.com" }),
    (error) => error instanceof DodoPayments.BadRequestError && error.error.message.includes("url"),
  );
  await assert.rejects(
    client.webhooks.create({ url: "https://example.com", filter_types: ["payment.succeeded"] }),
    DodoPayments.BadRequestError,
  );

  assert.equal(await client.webhooks.delete(plain.id), null);
  await assert.rejects(client.webhooks.retrieve(plain.id), DodoPayments.NotFoundError);
  assert.deepEqual((await all(client.webhooks.list())).map((w) => w.id), [hook.id]);
  assert.equal(await client.webhooks.delete(hook.id), null);
}

// A receiver on 127.0.0.1 subscribed to `license_key.created`: its deliveries verify
// with `client.webhooks.unwrap`, and a changed body or another secret does not.
async function deliveries(customerId, productId) {
  const received = [];
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ body: Buffer.concat(chunks).toString("utf8"), headers: request.headers });
      response.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/hooks`;
  const hook = await client.webhooks.create({ url, filter_types: ["license_key.created"] });
  const { secret } = await client.webhooks.retrieveSecret(hook.id);

  const first = await client.licenseKeys.create({ customer_id: customerId, product_id: productId, key: "HOOKED-JS-1" });
  // Not subscribed to: had it been delivered, it would arrive between the two others.
  await client.licenseKeys.update(first.id, { activations_limit: 9 });
  const second = await client.licenseKeys.create({ customer_id: customerId, product_id: productId, key: "HOOKED-JS-2" });
  const deadline = Date.now() + 20_000;
  while (received.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(received.length, 2, "two deliveries within 20 s");

  const events = received.map(({ body, headers }) => client.webhooks.unwrap(body, { headers, key: secret }));
  assert.deepEqual(events.map((e) => e.type), ["license_key.created", "license_key.created"]);
  assert.deepEqual(events.map((e) => e.data.id), [first.id, second.id]);
  assert.deepEqual(events.map((e) => e.data.key), ["HOOKED-JS-1", "HOOKED-JS-2"]);
  assert.equal(events[0].data.payload_type, "LicenseKey");
  assert.equal(events[0].data.customer_id, customerId);
  assert.match(received[0].headers["webhook-id"], /^msg_/);

  const { body, headers } = received[0];
  const tampered = body.replace('"HOOKED-JS-1"', '"HOOKED-JS-X"');
  assert.notEqual(tampered, body);
  const refused = (error) => error.name === "WebhookVerificationError" && error.message === "No matching signature found";
  assert.throws(() => client.webhooks.unwrap(tampered, { headers, key: secret }), refused);
  const stranger = `whsec_${crypto.randomBytes(32).toString("base64")}`;
  assert.throws(() => client.webhooks.unwrap(body, { headers, key: stranger }), refused);
  // Without headers this client checks nothing and only parses: a receiver must pass them.
  assert.equal(client.webhooks.unwrap(tampered, { key: secret }).data.key, "HOOKED-JS-X");

  await client.webhooks.delete(hook.id);
  server.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
