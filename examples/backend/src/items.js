'use strict';
// Validation of the items API's input (pure; tested by test/items.test.js).

function itemName(body) {
  const name = body && typeof body.name === 'string' ? body.name.trim() : '';
  if (!name || name.length > 200) {
    throw Object.assign(new Error('name must be 1 to 200 characters'), { status: 422 });
  }
  return name;
}

module.exports = { itemName };
