// Calls the API through nginx and renders the items.
(function () {
  var api = document.body.getAttribute('data-api');
  function render(items) {
    var ul = document.getElementById('items');
    ul.textContent = '';
    items.forEach(function (item) {
      var li = document.createElement('li');
      li.textContent = item.name;
      ul.appendChild(li);
    });
  }
  function load() {
    fetch(api + '/version').then(function (r) { return r.json(); }).then(function (v) {
      document.getElementById('api-version').textContent = v.version;
    });
    fetch(api + '/items').then(function (r) { return r.json(); }).then(function (d) { render(d.items); });
  }
  document.getElementById('add').addEventListener('submit', function (e) {
    e.preventDefault();
    var name = e.target.elements.name.value;
    fetch(api + '/items', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: name }),
    }).then(function () { e.target.reset(); load(); });
  });
  load();
})();
