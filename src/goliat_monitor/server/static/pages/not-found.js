/* The "not found" page: nothing live, only what every page has (the theme toggle). */
import { startPage } from "../app.js";

startPage();
