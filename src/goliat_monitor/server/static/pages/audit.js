/* The audit log page: a server-rendered table; only what every page has (times, theme). */
import { startPage } from "../app.js";

startPage();
