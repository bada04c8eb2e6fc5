// Drives licensed with the official Dodo Payments JavaScript client (npm `dodopayments`),
// asserting what it returns and which error classes it throws.
//
// Run by tests/compat.rs with LICENSED_URL and LICENSED_API_KEY, and NODE_PATH naming
// the node_modules the client is installed in.

const assert = require("node:assert/strict");
const DodoPayments = require("dodopayments").default;

const client = new DodoPayments({
  bearerToken: process.env.LICENSED_API_KEY,
  baseURL: process.env.LICENSED_URL,
  // No retries: a test must see the first answer.
  maxRetries: 0,
});

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
  console.log("dodopayments (JavaScript): all checks passed");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
