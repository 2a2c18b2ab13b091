-- Realistic SQLite SELECT statements over Chinook/Northwind-style schemas, written for the
-- structgen grammar tests. One statement per block; a line holding only a double semicolon
-- after the comment marker separates blocks. This header is not part of any block.

SELECT * FROM customers;
-- ;;
SELECT FirstName, LastName, Email FROM customers WHERE Country = 'Brazil' ORDER BY LastName;
-- ;;
SELECT c.CustomerId, c.FirstName || ' ' || c.LastName AS FullName, COUNT(i.InvoiceId) AS invoices
FROM customers AS c
LEFT JOIN invoices AS i ON i.CustomerId = c.CustomerId
GROUP BY c.CustomerId
HAVING COUNT(i.InvoiceId) > 5
ORDER BY invoices DESC, FullName
LIMIT 10;
-- ;;
select name, milliseconds / 60000.0 as minutes from tracks where milliseconds > 300000 order by minutes desc limit 20
-- ;;
SELECT DISTINCT BillingCountry FROM invoices ORDER BY 1;
-- ;;
SELECT strftime('%Y', InvoiceDate) AS year, ROUND(SUM(Total), 2) AS revenue
FROM invoices
GROUP BY year
ORDER BY year;
-- ;;
SELECT t.Name AS track, a.Title AS album, ar.Name AS artist
FROM tracks t
JOIN albums a ON a.AlbumId = t.AlbumId
JOIN artists ar ON ar.ArtistId = a.ArtistId
WHERE t.GenreId IN (SELECT GenreId FROM genres WHERE Name LIKE 'Rock%')
LIMIT 50 OFFSET 100;
-- ;;
SELECT e.FirstName, e.LastName, m.FirstName AS ManagerFirst, m.LastName AS ManagerLast
FROM employees e LEFT OUTER JOIN employees m ON e.ReportsTo = m.EmployeeId;
-- ;;
SELECT CustomerId, Total,
       CASE
           WHEN Total >= 20 THEN 'large'
           WHEN Total >= 10 THEN 'medium'
           ELSE 'small'
       END AS size
FROM invoices;
-- ;;
SELECT COUNT(*) FROM tracks WHERE Composer IS NULL;
-- ;;
SELECT Composer, COUNT(*) AS n FROM tracks WHERE Composer IS NOT NULL GROUP BY Composer HAVING n >= 10 ORDER BY n DESC;
-- ;;
SELECT p.ProductName, p.UnitPrice FROM Products p WHERE p.UnitPrice > (SELECT AVG(UnitPrice) FROM Products) ORDER BY p.UnitPrice DESC;
-- ;;
SELECT o.OrderID, o.OrderDate, c.CompanyName FROM Orders o INNER JOIN Customers c USING (CustomerID) WHERE o.OrderDate BETWEEN '1997-01-01' AND '1997-12-31';
-- ;;
WITH monthly AS (
    SELECT strftime('%Y-%m', OrderDate) AS month, COUNT(*) AS orders
    FROM Orders
    GROUP BY month
)
SELECT month, orders, AVG(orders) OVER (ORDER BY month ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS moving_avg
FROM monthly;
-- ;;
SELECT CategoryName, ProductName, UnitPrice,
       RANK() OVER (PARTITION BY c.CategoryID ORDER BY UnitPrice DESC) AS price_rank
FROM Products p JOIN Categories c ON c.CategoryID = p.CategoryID;
-- ;;
SELECT "Order Details".OrderID, SUM("Order Details".UnitPrice * "Order Details".Quantity * (1 - "Order Details".Discount)) AS total
FROM "Order Details"
GROUP BY "Order Details".OrderID
ORDER BY total DESC
LIMIT 5;
-- ;;
SELECT [First Name], [Last Name] FROM [Employee List] WHERE [Hire Date] >= '2003-01-01';
-- ;;
SELECT `user`.`id`, `user`.`name` FROM `user` WHERE `user`.`deleted_at` IS NULL;
-- ;;
SELECT id, name FROM users WHERE email LIKE '%@example.com' ESCAPE '\' AND active = 1;
-- ;;
SELECT id FROM users WHERE NOT EXISTS (SELECT 1 FROM orders WHERE orders.user_id = users.id);
-- ;;
SELECT u.id, u.name, COALESCE(SUM(o.amount), 0) AS spent
FROM users u
LEFT JOIN orders o ON o.user_id = u.id AND o.status <> 'cancelled'
GROUP BY u.id, u.name
ORDER BY spent DESC NULLS LAST;
-- ;;
SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name;
-- ;;
SELECT typeof(x), length(x), upper(substr(x, 1, 3)) FROM t1;
-- ;;
SELECT CAST(price AS INTEGER) AS whole, price % 1 AS frac, -price AS neg FROM items WHERE price != 0;
-- ;;
SELECT a, b FROM t1 UNION SELECT c, d FROM t2 UNION ALL SELECT e, f FROM t3 ORDER BY 1 LIMIT 100;
-- ;;
SELECT id FROM a INTERSECT SELECT id FROM b EXCEPT SELECT id FROM c;
-- ;;
SELECT * FROM (SELECT id, score FROM results WHERE score > 50) AS good WHERE good.id % 2 = 0;
-- ;;
SELECT dept, MAX(salary) AS top, MIN(salary) AS bottom, AVG(salary) AS mean, COUNT(DISTINCT title) AS titles
FROM staff
GROUP BY dept
HAVING AVG(salary) > 50000 AND COUNT(*) > 3;
-- ;;
SELECT date('now', '-7 days') AS week_ago, datetime('now') AS now, julianday('now') - julianday('2000-01-01') AS days;
-- ;;
SELECT * FROM events WHERE created_at >= ? AND created_at < ? ORDER BY created_at;
-- ;;
SELECT * FROM products WHERE category = :category AND price <= :max_price;
-- ;;
SELECT name, price FROM products WHERE price BETWEEN 10 AND 20 AND name NOT IN ('foo', 'bar') ORDER BY price ASC, name DESC;
-- ;;
SELECT id, json_extract(payload, '$.user.id') AS user_id FROM logs WHERE json_extract(payload, '$.level') = 'error';
-- ;;
SELECT customer_id, SUM(amount) FILTER (WHERE status = 'paid') AS paid, SUM(amount) FILTER (WHERE status = 'due') AS due FROM invoices GROUP BY customer_id;
-- ;;
WITH RECURSIVE cnt(x) AS (
    SELECT 1
    UNION ALL
    SELECT x + 1 FROM cnt WHERE x < 10
)
SELECT x FROM cnt;
-- ;;
WITH RECURSIVE subordinates(id, name, depth) AS (
    SELECT EmployeeId, FirstName, 0 FROM employees WHERE ReportsTo IS NULL
    UNION ALL
    SELECT e.EmployeeId, e.FirstName, s.depth + 1
    FROM employees e JOIN subordinates s ON e.ReportsTo = s.id
)
SELECT * FROM subordinates ORDER BY depth, name;
-- ;;
SELECT a.x, b.y FROM a CROSS JOIN b WHERE a.x < b.y;
-- ;;
SELECT * FROM orders NATURAL JOIN customers;
-- ;;
SELECT o.id, s.name FROM orders o LEFT JOIN shipments s ON s.order_id = o.id WHERE s.id IS NULL;
-- ;;
SELECT x, y, x * y AS product, x << 2 AS shifted, x & 0xFF AS low_byte, ~x AS inverted FROM numbers;
-- ;;
SELECT title FROM books WHERE (author = 'Austen' OR author = 'Bronte') AND year < 1850;
-- ;;
SELECT title, year FROM movies WHERE rating >= 8.5 ORDER BY year DESC, title LIMIT 25;
-- ;;
SELECT id, 1.5e3 AS big, .25 AS quarter, 3. AS three FROM t;
-- ;;
SELECT 'It''s here' AS msg, 'a' || 'b' AS ab;
-- ;;
SELECT replace(name, ' ', '_') AS slug, lower(trim(name)) AS normalized FROM tags;
-- ;;
SELECT product_id, quantity FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE customer_id = 42) AND quantity > 1;
-- ;;
SELECT name, COUNT(*) OVER () AS total_rows, ROW_NUMBER() OVER (ORDER BY name) AS rn FROM people;
-- ;;
SELECT region, product, SUM(sales) AS s, SUM(SUM(sales)) OVER (PARTITION BY region) AS region_total FROM sales GROUP BY region, product;
-- ;;
SELECT * FROM logs /* only errors */ WHERE level = 'ERROR' -- recent first
ORDER BY ts DESC;
-- ;;
SELECT GROUP_CONCAT(name, ', ') AS names FROM (SELECT name FROM users ORDER BY name);
-- ;;
SELECT user_id, MAX(ts) AS last_seen FROM sessions GROUP BY user_id HAVING MAX(ts) < date('now', '-30 days');
-- ;;
SELECT e.name, d.name AS department FROM employees e, departments d WHERE e.dept_id = d.id AND d.name = 'Sales';
-- ;;
SELECT id, IIF(score >= 60, 'pass', 'fail') AS result FROM exams;
-- ;;
SELECT CASE status WHEN 1 THEN 'new' WHEN 2 THEN 'open' ELSE 'closed' END AS label, COUNT(*) FROM tickets GROUP BY status;
-- ;;
SELECT * FROM t WHERE a IS b AND c IS NOT d AND e ISNULL AND f NOTNULL;
-- ;;
SELECT id FROM files WHERE path GLOB '*.txt' OR path REGEXP '^/tmp/';
-- ;;
SELECT abs(-5), max(1, 2, 3), min(a, b), random() % 100 AS r FROM t LIMIT 1;
-- ;;
SELECT id, name COLLATE NOCASE AS n FROM users ORDER BY name COLLATE NOCASE ASC;
-- ;;
SELECT a.id, (SELECT COUNT(*) FROM b WHERE b.a_id = a.id) AS b_count FROM a;
-- ;;
VALUES (1, 'one'), (2, 'two'), (3, 'three');
-- ;;
SELECT x FROM t WHERE (x, y) IN (SELECT a, b FROM u);
-- ;;
SELECT CURRENT_TIMESTAMP, CURRENT_DATE, TRUE AND NOT FALSE;
-- ;;
SELECT id FROM items ORDER BY price DESC LIMIT 10, 20;
