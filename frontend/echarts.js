// The dashboards' ECharts, built from its modules with only the chart types the dashboards draw
// (line and bar, with mark areas and lines, tooltip, legend and grid) instead of the whole
// 1 MB bundle. `npm run build` (run by the Makefile after `npm ci`) writes build/echarts.min.js,
// which staticfiles serves as vendor/echarts/echarts.min.js. The ZH locale is built into core.
import * as echarts from "echarts/core";
import { BarChart, LineChart } from "echarts/charts";
import {
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  MarkLineComponent,
  TooltipComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([
  BarChart,
  LineChart,
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  MarkLineComponent,
  TooltipComponent,
  CanvasRenderer,
]);

window.echarts = echarts;
